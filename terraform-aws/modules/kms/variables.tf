variable "environment" {
  type        = string
  description = "Environment name (dev or prod); the key's alias is alias/ecom-<environment>."
}

variable "deletion_window_in_days" {
  type        = number
  description = "Days a scheduled deletion of the key waits before the key is destroyed."
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "The deletion window must be between 7 and 30 days."
  }
}

variable "ebs_service_linked_role_arns" {
  type        = list(string)
  description = "Service-linked roles that encrypt EBS volumes with this key on the account's behalf (the Auto Scaling role of EKS managed node groups). They must exist before the key policy names them."
  default     = []
}
