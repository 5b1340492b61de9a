variable "project_id" {
  description = "GCP project of the engine's service account (one project per environment)."
  type        = string
}

variable "workload_pool" {
  description = "Workload Identity pool of the GKE cluster (<project>.svc.id.goog)."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the engine."
  type        = string
  default     = "ecom"
}

variable "service_account_name" {
  description = "Kubernetes service account of the engine."
  type        = string
  default     = "stream-engine"
}
