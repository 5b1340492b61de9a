variable "identifier" {
  type        = string
  description = "Identifier of the DB instance and name prefix of its companions (ecom-<environment>-postgres)."
}

variable "engine_version" {
  type        = string
  description = "PostgreSQL version; a major version alone (16) lets automatic minor upgrades move it."
  default     = "16"
}

variable "instance_class" {
  type        = string
  description = "DB instance class."
}

variable "allocated_storage_gb" {
  type        = number
  description = "Initial storage in GiB."
}

variable "max_allocated_storage_gb" {
  type        = number
  description = "Ceiling in GiB for storage autoscaling."
}

variable "database_name" {
  type        = string
  description = "Name of the database created with the instance."
  default     = "ecom"
}

variable "master_username" {
  type        = string
  description = "Master user name; its password is generated and rotated by RDS in Secrets Manager."
  default     = "ecom"
}

variable "vpc_id" {
  type        = string
  description = "Id of the VPC."
}

variable "database_subnet_ids" {
  type        = list(string)
  description = "Database subnets (one per zone) of the subnet group."
}

variable "allowed_security_group_ids" {
  type        = list(string)
  description = "Security groups whose members may connect on 5432 (the EKS cluster/node security group)."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting storage, Performance Insights, the master secret and the log groups."
}

variable "backup_retention_days" {
  type        = number
  description = "Days automated backups are kept."
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 7
    error_message = "Backups are kept at least 7 days."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the instance until this is turned off."
  default     = true
}

variable "log_min_duration_statement_ms" {
  type        = number
  description = "Statements running at least this many milliseconds are logged (log_min_duration_statement)."
  default     = 500
}

variable "monitoring_interval_seconds" {
  type        = number
  description = "Enhanced monitoring interval in seconds (1, 5, 10, 15, 30 or 60)."
  default     = 60

  validation {
    condition     = contains([1, 5, 10, 15, 30, 60], var.monitoring_interval_seconds)
    error_message = "Enhanced monitoring needs an interval of 1, 5, 10, 15, 30 or 60 seconds."
  }
}

variable "performance_insights_retention_days" {
  type        = number
  description = "Days Performance Insights data is kept (7, or a multiple of 31 up to 731)."
  default     = 7
}

variable "log_retention_days" {
  type        = number
  description = "Days the exported PostgreSQL logs are kept in CloudWatch Logs."
  default     = 365
}
