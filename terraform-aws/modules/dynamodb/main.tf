# The stream engine's window results (result-store/src/dynamo.rs): one item per product and
# window; by_window answers the top of a window, by_day a time range.
resource "aws_dynamodb_table" "results" {
  name                        = "${var.name_prefix}-analytics"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "product_id"
  range_key                   = "window_start"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "product_id"
    type = "S"
  }

  attribute {
    name = "window_start"
    type = "S"
  }

  attribute {
    name = "rank"
    type = "S"
  }

  attribute {
    name = "day"
    type = "S"
  }

  attribute {
    name = "window_product"
    type = "S"
  }

  global_secondary_index {
    name            = "by_window"
    hash_key        = "window_start"
    range_key       = "rank"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "by_day"
    hash_key        = "day"
    range_key       = "window_product"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = {
    Name = "${var.name_prefix}-analytics"
  }
}

# The engine's per-partition checkpoints.
resource "aws_dynamodb_table" "checkpoints" {
  name                        = "${var.name_prefix}-analytics-checkpoints"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "stream_partition"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "stream_partition"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = {
    Name = "${var.name_prefix}-analytics-checkpoints"
  }
}
