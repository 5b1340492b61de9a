variable "name" {
  type        = string
  description = "Name prefix of the network's resources (ecom-<environment>)."
}

variable "cidr_block" {
  type        = string
  description = "IPv4 CIDR block of the VPC."
}

variable "azs" {
  type        = list(string)
  description = "The three availability zones the subnets are spread over."

  validation {
    condition     = length(var.azs) == 3
    error_message = "Exactly three availability zones are expected."
  }
}

variable "public_subnet_cidrs" {
  type        = list(string)
  description = "CIDR blocks of the public subnets (load balancers, NAT gateways), one per zone."
}

variable "private_subnet_cidrs" {
  type        = list(string)
  description = "CIDR blocks of the private subnets (EKS nodes, MSK brokers, the Lambda), one per zone."
}

variable "database_subnet_cidrs" {
  type        = list(string)
  description = "CIDR blocks of the database subnets (RDS; no route to the internet), one per zone."
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway for all zones (cheaper, dev) instead of one per zone (prod)."
  default     = false
}

variable "cluster_name" {
  type        = string
  description = "Name of the EKS cluster whose load balancers use these subnets (subnet discovery tags)."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the flow logs' log group."
}

variable "flow_log_retention_days" {
  type        = number
  description = "Days the VPC flow logs are kept."
  default     = 365

  validation {
    condition     = var.flow_log_retention_days >= 365
    error_message = "Flow logs are kept for at least 365 days."
  }
}
