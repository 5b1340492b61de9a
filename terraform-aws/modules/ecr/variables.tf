variable "repository_name" {
  type        = string
  description = "Name of the repository of the one ecom image."
  default     = "ecom"
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the images."
}

variable "tagged_images_to_keep" {
  type        = number
  description = "Most recent tagged images kept; older ones expire."
  default     = 50
}

variable "untagged_image_expiry_days" {
  type        = number
  description = "Days after which untagged images expire."
  default     = 7
}
