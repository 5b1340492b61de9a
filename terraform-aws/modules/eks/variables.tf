variable "cluster_name" {
  type        = string
  description = "Name of the EKS cluster (ecom-<environment>)."
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the control plane and the nodes, for example 1.31."
}

variable "vpc_id" {
  type        = string
  description = "Id of the VPC (given to the AWS Load Balancer Controller)."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets of the control plane's network interfaces and of the nodes."
}

variable "public_access_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the public API endpoint (operators, CI); never 0.0.0.0/0."

  validation {
    condition     = length(var.public_access_cidrs) > 0 && !contains(var.public_access_cidrs, "0.0.0.0/0")
    error_message = "List at least one CIDR block, and not 0.0.0.0/0."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key for envelope encryption of Kubernetes secrets, the node volumes and the control-plane log group."
}

variable "log_retention_days" {
  type        = number
  description = "Days the control-plane logs are kept."
  default     = 365
}

variable "node_instance_types" {
  type        = list(string)
  description = "Instance types of the managed node group."
}

variable "node_capacity_type" {
  type        = string
  description = "Capacity type of the nodes: ON_DEMAND or SPOT."
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.node_capacity_type)
    error_message = "node_capacity_type is ON_DEMAND or SPOT."
  }
}

variable "node_min_size" {
  type        = number
  description = "Fewest nodes of the node group."
}

variable "node_desired_size" {
  type        = number
  description = "Nodes the group starts with (later changes are left to the autoscaler)."
}

variable "node_max_size" {
  type        = number
  description = "Most nodes of the node group."
}

variable "node_volume_size_gb" {
  type        = number
  description = "Size in GiB of each node's encrypted root volume."
  default     = 50
}

variable "lb_controller_chart_version" {
  type        = string
  description = "Pinned version of the aws-load-balancer-controller Helm chart (https://aws.github.io/eks-charts)."
}
