variable "environment" {
  description = "Environment name (dev or prod)."
  type        = string
}

variable "project_id" {
  description = "GCP project of the cluster."
  type        = string
}

variable "region" {
  description = "Region of the regional cluster (its control plane and nodes span the region's zones)."
  type        = string
}

variable "network_id" {
  description = "Id of the VPC."
  type        = string
}

variable "subnetwork_id" {
  description = "Id of the private node subnet."
  type        = string
}

variable "pods_range_name" {
  description = "Secondary range of the subnet for pods."
  type        = string
}

variable "services_range_name" {
  description = "Secondary range of the subnet for services."
  type        = string
}

variable "master_ipv4_cidr_block" {
  description = "The /28 of the control plane's private endpoint."
  type        = string
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the control plane (operators, the ArgoCD egress addresses)."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
}

variable "enable_private_endpoint" {
  description = "Expose the control plane on its private endpoint only (then it is reached from inside the VPC)."
  type        = bool
  default     = false
}

variable "release_channel" {
  description = "GKE release channel (RAPID, REGULAR or STABLE)."
  type        = string
  default     = "REGULAR"
}

variable "binary_authorization_evaluation_mode" {
  description = "Binary Authorization evaluation mode."
  type        = string
  default     = "PROJECT_SINGLETON_POLICY_ENFORCE"
}

variable "database_encryption_key" {
  description = "Cloud KMS key id encrypting Kubernetes Secrets at the application layer."
  type        = string
}

variable "rbac_security_group" {
  description = "Google Group for RBAC (must be named gke-security-groups@<domain>)."
  type        = string
}

variable "machine_type" {
  description = "Machine type of the nodes."
  type        = string
  default     = "e2-standard-4"
}

variable "disk_size_gb" {
  description = "Boot disk size of the nodes."
  type        = number
  default     = 50
}

variable "min_node_count" {
  description = "Minimum nodes per zone."
  type        = number
  default     = 1
}

variable "max_node_count" {
  description = "Maximum nodes per zone."
  type        = number
  default     = 3
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels of the cluster and its nodes."
  type        = map(string)
  default     = {}
}
