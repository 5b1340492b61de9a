resource "aws_security_group" "this" {
  name        = "${var.cluster_name}-msk"
  description = "MSK ${var.cluster_name}: SASL/IAM over TLS (9098) from the EKS nodes only"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.cluster_name}-msk"
  }
}

resource "aws_vpc_security_group_ingress_rule" "from_security_groups" {
  count = length(var.allowed_security_group_ids)

  security_group_id            = aws_security_group.this.id
  description                  = "Kafka SASL/IAM over TLS from the EKS nodes"
  ip_protocol                  = "tcp"
  from_port                    = 9098
  to_port                      = 9098
  referenced_security_group_id = var.allowed_security_group_ids[count.index]
}

resource "aws_vpc_security_group_ingress_rule" "from_cidr_blocks" {
  count = length(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "Kafka SASL/IAM over TLS from a listed private network"
  ip_protocol       = "tcp"
  from_port         = 9098
  to_port           = 9098
  cidr_ipv4         = var.allowed_cidr_blocks[count.index]
}

resource "aws_msk_configuration" "this" {
  name           = var.cluster_name
  description    = "Brokers of ${var.cluster_name}: topics made on purpose, three replicas, two in sync"
  kafka_versions = [var.kafka_version]

  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=3
    min.insync.replicas=2
    unclean.leader.election.enable=false
  PROPERTIES

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "brokers" {
  name              = "/aws/msk/${var.cluster_name}/brokers"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.cluster_name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = length(var.private_subnet_ids)
  enhanced_monitoring    = var.enhanced_monitoring

  broker_node_group_info {
    instance_type   = var.broker_instance_type
    client_subnets  = var.private_subnet_ids
    security_groups = [aws_security_group.this.id]

    storage_info {
      ebs_storage_info {
        volume_size = var.broker_volume_size_gb
      }
    }
  }

  client_authentication {
    unauthenticated = false

    sasl {
      iam   = true
      scram = false
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = var.kms_key_arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }

      node_exporter {
        enabled_in_broker = true
      }
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.brokers.name
      }
    }
  }

  tags = {
    Name = var.cluster_name
  }
}

locals {
  # arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid> -> .../topic/<name>/<uuid>/ and group/.
  topic_arn_prefix = "${replace(aws_msk_cluster.this.arn, ":cluster/", ":topic/")}/"
  group_arn_prefix = "${replace(aws_msk_cluster.this.arn, ":cluster/", ":group/")}/"
}
