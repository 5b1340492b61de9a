variable "name_prefix" {
  type        = string
  description = "Prefix of the table names (ecom-<environment>): <prefix>-analytics and <prefix>-analytics-checkpoints."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key for server-side encryption."
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the tables until this is turned off."
  default     = true
}
