output "cluster_arn" {
  description = "ARN of the MSK cluster (the resource of kafka-cluster:Connect and the other cluster actions)."
  value       = aws_msk_cluster.this.arn
}

output "cluster_name" {
  description = "Name of the MSK cluster."
  value       = aws_msk_cluster.this.cluster_name
}

output "bootstrap_brokers_sasl_iam" {
  description = "Bootstrap brokers for SASL/IAM over TLS (port 9098), comma separated: KAFKA_BOOTSTRAP_SERVERS."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_iam
}

output "topic_arn_prefix" {
  description = "Prefix of the cluster's topic ARNs (arn:aws:kafka:<region>:<account>:topic/<cluster-name>/<cluster-uuid>/); append a topic name."
  value       = local.topic_arn_prefix
}

output "group_arn_prefix" {
  description = "Prefix of the cluster's consumer group ARNs (arn:aws:kafka:<region>:<account>:group/<cluster-name>/<cluster-uuid>/); append a group name or pattern."
  value       = local.group_arn_prefix
}

output "security_group_id" {
  description = "Id of the brokers' security group."
  value       = aws_security_group.this.id
}
