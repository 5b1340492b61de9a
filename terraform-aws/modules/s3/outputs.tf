output "bucket_name" {
  description = "Name of the import bucket."
  value       = aws_s3_bucket.imports.id
}

output "bucket_arn" {
  description = "ARN of the import bucket."
  value       = aws_s3_bucket.imports.arn
}

output "log_bucket_name" {
  description = "Name of the access-log bucket."
  value       = aws_s3_bucket.logs.id
}
