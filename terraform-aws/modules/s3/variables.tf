variable "bucket_name" {
  type        = string
  description = "Name of the import bucket (ecom-<environment>-imports-<account>)."
}

variable "log_bucket_name" {
  type        = string
  description = "Name of the bucket receiving the import bucket's server access logs."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key for the import bucket's default encryption."
}

variable "lambda_function_arn" {
  type        = string
  description = "ARN of the import function notified of each created .csv object."
}

variable "lambda_function_name" {
  type        = string
  description = "Name of the import function (for its invoke permission)."
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days a replaced or deleted object version is kept."
  default     = 30
}

variable "access_log_retention_days" {
  type        = number
  description = "Days the server access logs are kept."
  default     = 365
}
