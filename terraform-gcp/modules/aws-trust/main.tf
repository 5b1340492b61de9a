locals {
  name         = "ecom-${var.environment}-stream-engine"
  issuer_host  = trimprefix(var.issuer_url, "https://")
  topic_prefix = trimsuffix(var.msk_topic_arn_prefix, "/")
  group_prefix = trimsuffix(var.msk_group_arn_prefix, "/")
  tags         = merge({ Project = "ecom", Environment = var.environment, ManagedBy = "terraform-gcp" }, var.tags)
}

# AWS trusts the GKE cluster's Google-hosted OIDC issuer. No thumbprint: AWS validates this
# issuer's TLS certificate against its library of trusted root CAs.
resource "aws_iam_openid_connect_provider" "gke" {
  url            = var.issuer_url
  client_id_list = [var.audience]
  tags           = merge(local.tags, { Name = "${local.name}-gke-issuer" })
}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "GkeStreamEngineServiceAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.gke.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.issuer_host}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account_name}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.issuer_host}:aud"
      values   = [var.audience]
    }
  }
}

resource "aws_iam_role" "engine" {
  name                 = local.name
  description          = "Assumed by the stream engine on GKE (KSA ${var.namespace}/${var.service_account_name}) by web identity"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
  tags                 = local.tags
}

# Only what the engine does: DynamoDB writes on the results table, its indexes and the
# checkpoints table (it describes the tables, never creates them), with the use of the AWS
# tree's KMS key the tables are encrypted with, through DynamoDB only; MSK (IAM auth) read of the
# input topic with its group, and write of its outputs, which it creates at start when missing
# and writes with an idempotent producer.
data "aws_iam_policy_document" "engine" {
  statement {
    sid    = "DynamoDbResultsAndCheckpoints"
    effect = "Allow"
    actions = [
      "dynamodb:BatchWriteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
    ]
    resources = [
      var.dynamodb_results_table_arn,
      "${var.dynamodb_results_table_arn}/index/*",
      var.dynamodb_checkpoints_table_arn,
    ]
  }

  # The tables are encrypted with the AWS tree's customer managed key; its key policy lets the
  # account's IAM policies grant its use (root-account statement), and kms:ViaService limits
  # this grant to requests DynamoDB makes on the engine's behalf in the tables' region.
  statement {
    sid    = "KmsThroughDynamoDb"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${var.dynamodb_region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "MskCluster"
    effect    = "Allow"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently"]
    resources = [var.msk_cluster_arn]
  }

  statement {
    sid    = "MskReadInputTopic"
    effect = "Allow"
    # CreateTopic: the engine creates its input too when it starts before ingest (with the
    # partition count the engine is configured for); Kafka checks it even for a topic that exists.
    actions   = ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
    resources = ["${local.topic_prefix}/${var.input_topic}"]
  }

  statement {
    sid       = "MskConsumerGroup"
    effect    = "Allow"
    actions   = ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"]
    resources = ["${local.group_prefix}/${var.consumer_group}"]
  }

  statement {
    sid       = "MskWriteOutputTopics"
    effect    = "Allow"
    actions   = ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
    resources = [for topic in var.output_topics : "${local.topic_prefix}/${topic}"]
  }
}

resource "aws_iam_role_policy" "engine" {
  name   = local.name
  role   = aws_iam_role.engine.id
  policy = data.aws_iam_policy_document.engine.json
}
