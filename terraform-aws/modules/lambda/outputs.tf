output "function_name" {
  description = "Name of the import function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the import function (the bucket notification's target)."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.this.arn
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue of failed asynchronous invocations."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dlq.url
}

output "security_group_id" {
  description = "Id of the function's security group."
  value       = aws_security_group.this.id
}

output "log_group_name" {
  description = "Name of the function's log group."
  value       = aws_cloudwatch_log_group.this.name
}
