output "results_table_name" {
  description = "Name of the results table (DYNAMODB_TABLE)."
  value       = aws_dynamodb_table.results.name
}

output "results_table_arn" {
  description = "ARN of the results table."
  value       = aws_dynamodb_table.results.arn
}

output "results_index_arns" {
  description = "ARNs of the results table's global secondary indexes (by_window, by_day)."
  value       = [for name in ["by_window", "by_day"] : "${aws_dynamodb_table.results.arn}/index/${name}"]
}

output "checkpoints_table_name" {
  description = "Name of the checkpoints table (DYNAMODB_CHECKPOINT_TABLE)."
  value       = aws_dynamodb_table.checkpoints.name
}

output "checkpoints_table_arn" {
  description = "ARN of the checkpoints table."
  value       = aws_dynamodb_table.checkpoints.arn
}
