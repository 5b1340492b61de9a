output "auth_secret_arn" {
  description = "ARN of the ecom/<environment>/auth secret."
  value       = aws_secretsmanager_secret.auth.arn
}

output "auth_secret_name" {
  description = "Name of the auth secret (the remote key of its ExternalSecret)."
  value       = aws_secretsmanager_secret.auth.name
}

output "importer_secret_arn" {
  description = "ARN of the importer's secret (IMPORT_CLIENT_SECRET_ARN of the Lambda)."
  value       = aws_secretsmanager_secret.importer.arn
}

output "importer_secret_name" {
  description = "Name of the importer's secret."
  value       = aws_secretsmanager_secret.importer.name
}
