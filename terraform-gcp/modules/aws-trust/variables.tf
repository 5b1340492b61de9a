variable "environment" {
  description = "Environment name (dev or prod)."
  type        = string
}

variable "issuer_url" {
  description = "OIDC issuer of the GKE cluster: https://container.googleapis.com/v1/projects/<project>/locations/<location>/clusters/<cluster>."
  type        = string

  validation {
    condition     = startswith(var.issuer_url, "https://container.googleapis.com/v1/projects/")
    error_message = "The issuer must be a GKE cluster's Google-hosted issuer URL."
  }
}

variable "namespace" {
  description = "Kubernetes namespace of the engine."
  type        = string
  default     = "ecom"
}

variable "service_account_name" {
  description = "Kubernetes service account of the engine."
  type        = string
  default     = "stream-engine"
}

variable "audience" {
  description = "Audience of the projected service-account token the engine presents to STS."
  type        = string
  default     = "sts.amazonaws.com"
}

variable "dynamodb_results_table_arn" {
  description = "ARN of the results table ecom-<env>-analytics."
  type        = string
}

variable "dynamodb_checkpoints_table_arn" {
  description = "ARN of the checkpoints table ecom-<env>-analytics-checkpoints."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the AWS tree's KMS key the DynamoDB tables are encrypted with (terraform-aws output kms_key_arn)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.kms_key_arn))
    error_message = "The KMS key is given by its key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias."
  }
}

variable "dynamodb_region" {
  description = "Region of the DynamoDB tables (the kms:ViaService condition names dynamodb.<region>.amazonaws.com)."
  type        = string
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster."
  type        = string
}

variable "msk_topic_arn_prefix" {
  description = "arn:aws:kafka:<region>:<account>:topic/<cluster-name>/<cluster-uuid> (a trailing slash is accepted)."
  type        = string
}

variable "msk_group_arn_prefix" {
  description = "arn:aws:kafka:<region>:<account>:group/<cluster-name>/<cluster-uuid> (a trailing slash is accepted)."
  type        = string
}

variable "input_topic" {
  description = "Topic the engine reads."
  type        = string
  default     = "ecom-raw-events"
}

variable "output_topics" {
  description = "Topics the engine produces: results, late events, dead letters."
  type        = list(string)
  default     = ["ecom-analytics-results", "ecom-late-events", "ecom-dead-letters"]
}

variable "consumer_group" {
  description = "Consumer group of the engine."
  type        = string
  default     = "ecom-stream-engine"
}

variable "tags" {
  description = "Tags of the AWS resources."
  type        = map(string)
  default     = {}
}
