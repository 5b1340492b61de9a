output "role_arn" {
  description = "ARN of the role the engine assumes (its AWS_ROLE_ARN)."
  value       = aws_iam_role.engine.arn
}

output "role_name" {
  description = "Name of the role."
  value       = aws_iam_role.engine.name
}

output "oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider of the GKE issuer."
  value       = aws_iam_openid_connect_provider.gke.arn
}
