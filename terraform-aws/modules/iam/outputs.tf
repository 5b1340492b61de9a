output "role_arns" {
  description = "IRSA role ARN per workload (ingest, orders, analytics, external-secrets)."
  value       = { for name, role in aws_iam_role.this : name => role.arn }
}

output "ingest_role_arn" {
  description = "ARN of the ecom-<environment>-ingest role (ServiceAccount ecom/ingest)."
  value       = aws_iam_role.this["ingest"].arn
}

output "orders_role_arn" {
  description = "ARN of the ecom-<environment>-orders role (ServiceAccount ecom/orders)."
  value       = aws_iam_role.this["orders"].arn
}

output "analytics_role_arn" {
  description = "ARN of the ecom-<environment>-analytics role (ServiceAccount ecom/analytics)."
  value       = aws_iam_role.this["analytics"].arn
}

output "external_secrets_role_arn" {
  description = "ARN of the ecom-<environment>-external-secrets role (ServiceAccount external-secrets/external-secrets)."
  value       = aws_iam_role.this["external-secrets"].arn
}

output "fluent_bit_role_arn" {
  description = "IRSA role of Fluent Bit (logging/fluent-bit)."
  value       = aws_iam_role.this["fluent-bit"].arn
}
