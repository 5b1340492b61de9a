output "argocd_namespace" {
  description = "Namespace ArgoCD runs in."
  value       = helm_release.argocd.namespace
}

output "external_secrets_namespace" {
  description = "Namespace External Secrets runs in."
  value       = helm_release.external_secrets.namespace
}

output "root_application_name" {
  description = "Name of the root (app of apps) Application."
  value       = var.root_application_name
}
