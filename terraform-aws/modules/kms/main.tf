data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  # In a key policy "Resource": "*" means this key and nothing else.
  base_statements = [
    {
      Sid       = "AccountAdministersTheKeyThroughIam"
      Effect    = "Allow"
      Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    },
    {
      Sid       = "CloudWatchLogsOfThisAccount"
      Effect    = "Allow"
      Principal = { Service = "logs.${local.region}.amazonaws.com" }
      Action = [
        "kms:Encrypt*",
        "kms:Decrypt*",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:Describe*",
      ]
      Resource = "*"
      Condition = {
        ArnLike = {
          "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"
        }
      }
    },
  ]

  ebs_statements = length(var.ebs_service_linked_role_arns) == 0 ? [] : [
    {
      Sid       = "ServiceLinkedRolesUseTheKeyForEbs"
      Effect    = "Allow"
      Principal = { AWS = var.ebs_service_linked_role_arns }
      Action = [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey",
      ]
      Resource = "*"
    },
    {
      Sid       = "ServiceLinkedRolesGrantForAttachedVolumes"
      Effect    = "Allow"
      Principal = { AWS = var.ebs_service_linked_role_arns }
      Action    = "kms:CreateGrant"
      Resource  = "*"
      Condition = {
        Bool = { "kms:GrantIsForAWSResource" = "true" }
      }
    },
  ]
}

resource "aws_kms_key" "this" {
  description             = "ecom ${var.environment}: data at rest (EKS secrets, RDS, MSK, DynamoDB, S3, SQS, Secrets Manager, logs)"
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(local.base_statements, local.ebs_statements)
  })

  tags = {
    Name = "ecom-${var.environment}"
  }
}

resource "aws_kms_alias" "this" {
  name          = "alias/ecom-${var.environment}"
  target_key_id = aws_kms_key.this.key_id
}
