variable "function_name" {
  type        = string
  description = "Name of the function (ecom-<environment>-import)."
}

variable "package_path" {
  type        = string
  description = "Path of the deployment zip made by `cargo lambda build --release --output-format zip` (target/lambda/lambda-import/bootstrap.zip of the workspace), relative to the directory Terraform runs in (the root module, terraform-aws/)."
  default     = "../target/lambda/lambda-import/bootstrap.zip"
}

variable "architecture" {
  type        = string
  description = "Instruction set the zip was built for: arm64 (cargo lambda build --arm64) or x86_64."
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture is arm64 or x86_64."
  }
}

variable "memory_size_mb" {
  type        = number
  description = "Memory of the function in MB."
  default     = 256
}

variable "timeout_seconds" {
  type        = number
  description = "Longest an invocation may run, in seconds."
  default     = 300
}

variable "reserved_concurrency" {
  type        = number
  description = "Invocations that may run at once (also the most concurrent imports the gateway sees)."
  default     = 5
}

variable "vpc_id" {
  type        = string
  description = "Id of the VPC."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets the function's network interfaces are placed in."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key for the environment variables, the dead-letter queue, the log group and the bucket's objects."
}

variable "import_bucket_name" {
  type        = string
  description = "Name of the bucket whose CSV objects the function imports (and beside which it writes reports)."
}

variable "importer_secret_arn" {
  type        = string
  description = "ARN of the Secrets Manager secret holding the importer's client secret (IMPORT_CLIENT_SECRET_ARN)."
}

variable "product_api_url" {
  type        = string
  description = "Base URL of the gateway the products are posted to (PRODUCT_API_URL)."
}

variable "import_client_id" {
  type        = string
  description = "Client id the function authenticates as (IMPORT_CLIENT_ID)."
  default     = "importer"
}

variable "import_batch_rows" {
  type        = number
  description = "Rows per batch sent to the gateway (IMPORT_BATCH_ROWS; the catalog takes at most 1000)."
  default     = 1000
}

variable "import_retry_seconds" {
  type        = number
  description = "How long the gateway is retried without any success before the import fails (IMPORT_RETRY_SECONDS)."
  default     = 120
}

variable "import_timeout_seconds" {
  type        = number
  description = "Timeout of one request to the gateway in seconds (IMPORT_TIMEOUT_SECONDS)."
  default     = 30
}

variable "rust_log" {
  type        = string
  description = "Log filter of the function (RUST_LOG)."
  default     = "info"
}

variable "otel_exporter_otlp_endpoint" {
  type        = string
  description = "OTLP/HTTP endpoint traces are exported to (OTEL_EXPORTER_OTLP_ENDPOINT); empty: no export, the variable is not set."
  default     = ""
}

variable "log_retention_days" {
  type        = number
  description = "Days the function's logs are kept."
  default     = 365
}
