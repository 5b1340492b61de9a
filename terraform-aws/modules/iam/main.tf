data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  # Kubernetes service accounts trusted by each role: namespace/name.
  service_accounts = {
    ingest           = "${var.namespace}:ingest"
    orders           = "${var.namespace}:orders"
    catalog          = "${var.namespace}:catalog"
    inventory        = "${var.namespace}:inventory"
    payments         = "${var.namespace}:payments"
    analytics        = "${var.namespace}:analytics"
    external-secrets = "external-secrets:external-secrets"
    fluent-bit       = "logging:fluent-bit"
  }

  # The order flow on MSK: every participant creates the flow's five topics at start when
  # missing (ecom catalog, orders, inventory and payments each ask for all five; one that exists
  # is left as it is), writes its own events and the dead letters through its outbox, and reads
  # what it answers to with its own consumer group (the participant's name; the read positions
  # are in its database).
  order_flow_topics = [
    var.order_events_topic,
    var.inventory_events_topic,
    var.payment_events_topic,
    var.catalog_events_topic,
    var.dead_letters_topic,
  ]
  order_flow = {
    catalog = {
      writes = [var.catalog_events_topic, var.dead_letters_topic]
      reads  = [var.inventory_events_topic]
    }
    orders = {
      writes = [var.order_events_topic, var.dead_letters_topic]
      reads  = [var.inventory_events_topic, var.payment_events_topic]
    }
    inventory = {
      writes = [var.inventory_events_topic, var.dead_letters_topic]
      reads  = [var.order_events_topic, var.catalog_events_topic]
    }
    payments = {
      writes = [var.payment_events_topic, var.dead_letters_topic]
      reads  = [var.order_events_topic]
    }
  }

  secrets_arn_prefix = "arn:${data.aws_partition.current.partition}:secretsmanager:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:secret:ecom/${var.environment}/"
}

data "aws_iam_policy_document" "assume" {
  for_each = local.service_accounts

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider}:sub"
      values   = ["system:serviceaccount:${each.value}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.service_accounts

  name                 = "${var.name_prefix}-${each.key}"
  description          = "IRSA role of the ${each.value} service account"
  assume_role_policy   = data.aws_iam_policy_document.assume[each.key].json
  max_session_duration = 3600
}

# ---------------------------------------------------------------- producers: ingest, orders

# Both produce to the raw events topic (orders the PURCHASE events of confirmed orders) through
# an idempotent producer (enable.idempotence).
data "aws_iam_policy_document" "producer" {
  statement {
    sid = "ConnectAsAnIdempotentProducer"
    actions = [
      "kafka-cluster:Connect",
      "kafka-cluster:DescribeCluster",
      "kafka-cluster:WriteDataIdempotently",
    ]
    resources = [var.msk_cluster_arn]
  }

  statement {
    sid = "WriteTheRawEventsTopic"
    actions = [
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:WriteData",
    ]
    resources = ["${var.msk_topic_arn_prefix}${var.raw_events_topic}"]
  }
}

# ingest also makes its topic when missing (ecom ingest without ECOM_NO_CREATE).
data "aws_iam_policy_document" "ingest" {
  source_policy_documents = [data.aws_iam_policy_document.producer.json]

  statement {
    sid       = "CreateTheRawEventsTopic"
    actions   = ["kafka-cluster:CreateTopic"]
    resources = ["${var.msk_topic_arn_prefix}${var.raw_events_topic}"]
  }
}

resource "aws_iam_role_policy" "ingest" {
  name   = "msk-produce-raw-events"
  role   = aws_iam_role.this["ingest"].id
  policy = data.aws_iam_policy_document.ingest.json
}

resource "aws_iam_role_policy" "orders" {
  name   = "msk-produce-raw-events"
  role   = aws_iam_role.this["orders"].id
  policy = data.aws_iam_policy_document.producer.json
}

# ---------------------------------------------------------------- order flow: catalog, orders, inventory, payments

data "aws_iam_policy_document" "order_flow" {
  for_each = local.order_flow

  statement {
    sid = "ConnectAsAnIdempotentProducer"
    actions = [
      "kafka-cluster:Connect",
      "kafka-cluster:DescribeCluster",
      "kafka-cluster:WriteDataIdempotently",
    ]
    resources = [var.msk_cluster_arn]
  }

  statement {
    sid = "CreateTheOrderFlowTopics"
    actions = [
      "kafka-cluster:CreateTopic",
      "kafka-cluster:DescribeTopic",
    ]
    resources = [for topic in local.order_flow_topics : "${var.msk_topic_arn_prefix}${topic}"]
  }

  statement {
    sid = "WriteItsEventsAndTheDeadLetters"
    actions = [
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:WriteData",
    ]
    resources = [for topic in each.value.writes : "${var.msk_topic_arn_prefix}${topic}"]
  }

  statement {
    sid = "ReadWhatItAnswersTo"
    actions = [
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:ReadData",
    ]
    resources = [for topic in each.value.reads : "${var.msk_topic_arn_prefix}${topic}"]
  }

  statement {
    sid = "UseItsOwnConsumerGroup"
    actions = [
      "kafka-cluster:DescribeGroup",
      "kafka-cluster:AlterGroup",
    ]
    resources = ["${var.msk_group_arn_prefix}${each.key}"]
  }
}

resource "aws_iam_role_policy" "order_flow" {
  for_each = local.order_flow

  name   = "msk-order-flow"
  role   = aws_iam_role.this[each.key].id
  policy = data.aws_iam_policy_document.order_flow[each.key].json
}

# ---------------------------------------------------------------- analytics

data "aws_iam_policy_document" "analytics" {
  statement {
    sid = "ReadTheResults"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:Query",
    ]
    resources = concat([var.results_table_arn], var.results_index_arns)
  }

  # latest_fired() reads the engine's checkpoints to know which window fired last.
  statement {
    sid = "ReadTheCheckpoints"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
    ]
    resources = [var.checkpoints_table_arn]
  }

  statement {
    sid       = "DecryptTablesThroughDynamoDb"
    actions   = ["kms:Decrypt", "kms:DescribeKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${data.aws_region.current.name}.amazonaws.com"]
    }
  }

  statement {
    sid = "ConnectToTheCluster"
    actions = [
      "kafka-cluster:Connect",
      "kafka-cluster:DescribeCluster",
    ]
    resources = [var.msk_cluster_arn]
  }

  statement {
    sid = "ReadTheResultsTopic"
    actions = [
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:ReadData",
    ]
    resources = ["${var.msk_topic_arn_prefix}${var.results_topic}"]
  }

  statement {
    sid = "UseItsOwnConsumerGroups"
    actions = [
      "kafka-cluster:DescribeGroup",
      "kafka-cluster:AlterGroup",
    ]
    resources = ["${var.msk_group_arn_prefix}${var.analytics_group_pattern}"]
  }
}

resource "aws_iam_role_policy" "analytics" {
  name   = "dynamodb-read-results-msk-read-results"
  role   = aws_iam_role.this["analytics"].id
  policy = data.aws_iam_policy_document.analytics.json
}

# ---------------------------------------------------------------- external-secrets

data "aws_iam_policy_document" "external_secrets" {
  statement {
    sid = "ReadTheEnvironmentsSecrets"
    actions = [
      "secretsmanager:GetSecretValue",
      "secretsmanager:DescribeSecret",
    ]
    resources = [
      "${local.secrets_arn_prefix}*",
      var.rds_master_secret_arn,
    ]
  }

  statement {
    sid       = "DecryptThroughSecretsManager"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "external_secrets" {
  name   = "secretsmanager-read-ecom-secrets"
  role   = aws_iam_role.this["external-secrets"].id
  policy = data.aws_iam_policy_document.external_secrets.json
}

# ---------------------------------------------------------------- Fluent Bit

# Writes log streams of the containers' log group, and nothing else (the group is Terraform's).
data "aws_iam_policy_document" "fluent_bit" {
  statement {
    sid = "WriteTheContainersLogStreams"
    actions = [
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [var.container_log_group_arn, "${var.container_log_group_arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "fluent_bit" {
  name   = "logs-write-containers"
  role   = aws_iam_role.this["fluent-bit"].id
  policy = data.aws_iam_policy_document.fluent_bit.json
}
