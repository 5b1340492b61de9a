variable "region" {
  type        = string
  description = "Region of the state bucket and lock table (the backend blocks' region)."
  default     = "eu-west-1"
}

variable "state_bucket_name" {
  type        = string
  description = "Name of the remote-state bucket (the backend blocks' bucket)."
  default     = "ecom-terraform-state"
}

variable "lock_table_name" {
  type        = string
  description = "Name of the DynamoDB lock table (the backend blocks' dynamodb_table)."
  default     = "ecom-terraform-locks"
}

variable "create_autoscaling_service_linked_role" {
  type        = bool
  description = "Make AWSServiceRoleForAutoScaling, which the environments' KMS key policies name so that EKS node volumes can be encrypted with their key; false when the account already has it."
  default     = true
}
