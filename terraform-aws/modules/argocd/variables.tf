variable "argocd_chart_version" {
  type        = string
  description = "Pinned version of the argo-cd Helm chart (https://argoproj.github.io/argo-helm)."
}

variable "argocd_apps_chart_version" {
  type        = string
  description = "Pinned version of the argocd-apps Helm chart that declares the root Application."
}

variable "external_secrets_chart_version" {
  type        = string
  description = "Pinned version of the external-secrets Helm chart (https://charts.external-secrets.io)."
}

variable "external_secrets_role_arn" {
  type        = string
  description = "ARN of the IRSA role the external-secrets/external-secrets service account assumes."
}

variable "repository_url" {
  type        = string
  description = "Git repository ArgoCD syncs from (this repository)."
}

variable "target_revision" {
  type        = string
  description = "Branch, tag or commit of the repository ArgoCD follows."
  default     = "main"
}

variable "apps_path" {
  type        = string
  description = "Directory of the repository holding the child Applications (app of apps)."
  default     = "k8s/argocd/apps"
}

variable "root_application_name" {
  type        = string
  description = "Name of the root Application."
  default     = "ecom-root"
}
