output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = aws_eks_cluster.this.arn
}

output "cluster_endpoint" {
  description = "URL of the cluster's Kubernetes API."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64-encoded certificate of the cluster's certificate authority."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "Id of the security group EKS made for the control plane and the managed nodes (the source the databases and brokers admit)."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider of the cluster's service-account issuer (IRSA)."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "oidc_provider" {
  description = "The cluster's OIDC issuer without https:// (the prefix of IRSA trust condition keys)."
  value       = local.oidc_provider
}

output "node_role_arn" {
  description = "ARN of the IAM role of the managed nodes."
  value       = aws_iam_role.node.arn
}

output "lb_controller_role_arn" {
  description = "ARN of the IRSA role of the AWS Load Balancer Controller (kube-system/aws-load-balancer-controller)."
  value       = aws_iam_role.lb_controller.arn
}

output "container_log_group_arn" {
  description = "ARN of the containers' log group (Fluent Bit writes to it)."
  value       = aws_cloudwatch_log_group.containers.arn
}
