data "aws_partition" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  bucket_arn = "arn:${local.partition}:s3:::${var.import_bucket_name}"

  # Exactly what lambda-import reads (src/main.rs, product_import, service_common::telemetry).
  environment = merge(
    {
      PRODUCT_API_URL          = var.product_api_url
      IMPORT_CLIENT_ID         = var.import_client_id
      IMPORT_CLIENT_SECRET_ARN = var.importer_secret_arn
      IMPORT_BATCH_ROWS        = tostring(var.import_batch_rows)
      IMPORT_RETRY_SECONDS     = tostring(var.import_retry_seconds)
      IMPORT_TIMEOUT_SECONDS   = tostring(var.import_timeout_seconds)
      RUST_LOG                 = var.rust_log
    },
    var.otel_exporter_otlp_endpoint == "" ? {} : {
      OTEL_EXPORTER_OTLP_ENDPOINT = var.otel_exporter_otlp_endpoint
    },
  )
}

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.function_name}-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_security_group" "this" {
  name        = var.function_name
  description = "Lambda ${var.function_name}: HTTPS out only (gateway, S3, Secrets Manager)"
  vpc_id      = var.vpc_id

  tags = {
    Name = var.function_name
  }
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.this.id
  description       = "HTTPS to the gateway and the AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# ---------------------------------------------------------------- role

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.function_name
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# Network interfaces in the VPC and the function's own logs.
resource "aws_iam_role_policy_attachment" "vpc_access" {
  role       = aws_iam_role.this.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "ReadTheImportedObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${local.bucket_arn}/*"]
  }

  statement {
    sid       = "WriteTheReportBesideEachObject"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/*.report.json"]
  }

  statement {
    sid       = "ObjectsAndQueueUnderTheKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "TheImporterSecretOnly"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.importer_secret_arn]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid = "XRayTraces"
    actions = [
      "xray:PutTraceSegments",
      "xray:PutTelemetryRecords",
    ]
    # X-Ray's write actions take no resource-level permissions.
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "import"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

# ---------------------------------------------------------------- function

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_272:The zip is built by cargo lambda in CI and deployed by this configuration from the same pipeline; no AWS Signer signing profile exists in this project to sign it.
  function_name                  = var.function_name
  description                    = "Imports each .csv object created in ${var.import_bucket_name} through the gateway"
  role                           = aws_iam_role.this.arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = var.package_path
  source_code_hash               = filebase64sha256(var.package_path)
  memory_size                    = var.memory_size_mb
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = local.environment
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.this.id]
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dlq.arn
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this.name
  }

  depends_on = [
    aws_cloudwatch_log_group.this,
    aws_iam_role_policy.this,
    aws_iam_role_policy_attachment.vpc_access,
  ]
}
