variable "environment" {
  type        = string
  description = "Environment name; the secrets are named ecom/<environment>/auth and ecom/<environment>/importer."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the secrets."
}

variable "importer_client_id" {
  type        = string
  description = "Client id of the importer (the auth service's importer client; IMPORT_CLIENT_ID of the Lambda)."
  default     = "importer"
}

variable "recovery_window_in_days" {
  type        = number
  description = "Days a deleted secret can still be restored."
  default     = 30
}
