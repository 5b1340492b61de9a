variable "cluster_name" {
  type        = string
  description = "Name of the MSK cluster (ecom-<environment>)."
}

variable "kafka_version" {
  type        = string
  description = "Apache Kafka version of the brokers."
  default     = "3.6.0"
}

variable "broker_instance_type" {
  type        = string
  description = "Instance type of the brokers."
}

variable "broker_volume_size_gb" {
  type        = number
  description = "EBS storage in GiB per broker."
}

variable "vpc_id" {
  type        = string
  description = "Id of the VPC."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "The three private subnets (one per zone) the brokers live in; one broker per subnet."

  validation {
    condition     = length(var.private_subnet_ids) == 3
    error_message = "Three subnets: one broker per zone."
  }
}

variable "allowed_security_group_ids" {
  type        = list(string)
  description = "Security groups whose members may connect on 9098 (SASL/IAM over TLS): the EKS nodes."
}

variable "allowed_cidr_blocks" {
  type        = list(string)
  description = "Further private CIDR blocks admitted on 9098, such as the GKE side of a site-to-site VPN; empty by default."
  default     = []
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key for data at rest and the broker log group."
}

variable "enhanced_monitoring" {
  type        = string
  description = "Level of the CloudWatch metrics: DEFAULT, PER_BROKER, PER_TOPIC_PER_BROKER or PER_TOPIC_PER_PARTITION."
  default     = "PER_TOPIC_PER_BROKER"
}

variable "log_retention_days" {
  type        = number
  description = "Days the broker logs are kept."
  default     = 365
}
