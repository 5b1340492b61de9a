output "state_bucket_name" {
  description = "Bucket of the environments' S3 backends."
  value       = aws_s3_bucket.state.id
}

output "lock_table_name" {
  description = "DynamoDB lock table of the environments' S3 backends."
  value       = aws_dynamodb_table.locks.name
}

output "state_kms_key_arn" {
  description = "ARN of the key encrypting the state and the lock table (alias/ecom-terraform-state)."
  value       = aws_kms_key.state.arn
}
