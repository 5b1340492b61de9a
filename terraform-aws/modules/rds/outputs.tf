output "address" {
  description = "Host name of the DB instance (DB_HOST)."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port of the DB instance (DB_PORT)."
  value       = aws_db_instance.this.port
}

output "database_name" {
  description = "Name of the application database (DB_NAME)."
  value       = aws_db_instance.this.db_name
}

output "master_username" {
  description = "Master user name (DB_USER)."
  value       = aws_db_instance.this.username
}

output "master_user_secret_arn" {
  description = "ARN of the Secrets Manager secret RDS keeps and rotates for the master user (JSON with username and password)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "instance_arn" {
  description = "ARN of the DB instance."
  value       = aws_db_instance.this.arn
}

output "resource_id" {
  description = "Resource id of the DB instance (for rds-db:connect policies under IAM authentication)."
  value       = aws_db_instance.this.resource_id
}

output "security_group_id" {
  description = "Id of the DB instance's security group."
  value       = aws_security_group.this.id
}
