output "key_arn" {
  description = "ARN of the environment's customer managed KMS key."
  value       = aws_kms_key.this.arn
}

output "key_id" {
  description = "Id of the environment's customer managed KMS key."
  value       = aws_kms_key.this.key_id
}

output "alias_name" {
  description = "Alias of the key (alias/ecom-<environment>)."
  value       = aws_kms_alias.this.name
}
