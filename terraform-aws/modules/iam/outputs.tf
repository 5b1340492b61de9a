output "role_arns" {
  description = "IRSA role ARN per workload (ingest, orders, catalog, inventory, payments, analytics, external-secrets, fluent-bit)."
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

output "catalog_role_arn" {
  description = "ARN of the ecom-<environment>-catalog role (ServiceAccount ecom/catalog)."
  value       = aws_iam_role.this["catalog"].arn
}

output "inventory_role_arn" {
  description = "ARN of the ecom-<environment>-inventory role (ServiceAccount ecom/inventory)."
  value       = aws_iam_role.this["inventory"].arn
}

output "payments_role_arn" {
  description = "ARN of the ecom-<environment>-payments role (ServiceAccount ecom/payments)."
  value       = aws_iam_role.this["payments"].arn
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
