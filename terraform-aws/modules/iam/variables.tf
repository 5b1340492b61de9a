variable "name_prefix" {
  type        = string
  description = "Prefix of the role names (ecom-<environment>); each role is <prefix>-<workload>."
}

variable "environment" {
  type        = string
  description = "Environment name; External Secrets may read the ecom/<environment>/* secrets."
}

variable "oidc_provider_arn" {
  type        = string
  description = "ARN of the EKS cluster's IAM OIDC provider."
}

variable "oidc_provider" {
  type        = string
  description = "The EKS OIDC issuer without https:// (prefix of the :sub and :aud condition keys)."
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace of the ecom workloads."
  default     = "ecom"
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the tables and the secrets."
}

variable "results_table_arn" {
  type        = string
  description = "ARN of the DynamoDB results table."
}

variable "results_index_arns" {
  type        = list(string)
  description = "ARNs of the results table's global secondary indexes."
}

variable "checkpoints_table_arn" {
  type        = string
  description = "ARN of the DynamoDB checkpoints table."
}

variable "msk_cluster_arn" {
  type        = string
  description = "ARN of the MSK cluster."
}

variable "msk_topic_arn_prefix" {
  type        = string
  description = "Prefix of the cluster's topic ARNs, ending in a slash."
}

variable "msk_group_arn_prefix" {
  type        = string
  description = "Prefix of the cluster's consumer group ARNs, ending in a slash."
}

variable "raw_events_topic" {
  type        = string
  description = "Topic the ingest service and the orders outbox relay produce to."
  default     = "ecom-raw-events"
}

variable "order_events_topic" {
  type        = string
  description = "Topic of the order saga's commands and outcomes, written by orders, read by inventory and payments."
  default     = "order.events"
}

variable "inventory_events_topic" {
  type        = string
  description = "Topic of the inventory's replies and stock changes, read by orders and the catalog."
  default     = "inventory.events"
}

variable "payment_events_topic" {
  type        = string
  description = "Topic of the payments' replies, read by orders."
  default     = "payment.events"
}

variable "catalog_events_topic" {
  type        = string
  description = "Topic of the stock the catalog is given, read by the inventory."
  default     = "catalog.events"
}

variable "dead_letters_topic" {
  type        = string
  description = "Topic of the order flow's messages no participant could handle (each writes it, none reads it)."
  default     = "saga.dead-letters"
}

variable "results_topic" {
  type        = string
  description = "Topic of window results the analytics service follows."
  default     = "ecom-analytics-results"
}

variable "analytics_group_pattern" {
  type        = string
  description = "Consumer group name (pattern) of the analytics service: one group per process, ecom-analytics-<pid>."
  default     = "ecom-analytics-*"
}

variable "rds_master_secret_arn" {
  type        = string
  description = "ARN of the RDS-managed master user secret External Secrets copies into the cluster."
}

variable "container_log_group_arn" {
  type        = string
  description = "ARN of the containers' CloudWatch log group, the only one Fluent Bit's role may write."
}
