output "vpc_id" {
  description = "Id of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Ids of the public subnets, one per zone."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Ids of the private subnets, one per zone."
  value       = aws_subnet.private[*].id
}

output "database_subnet_ids" {
  description = "Ids of the database subnets, one per zone."
  value       = aws_subnet.database[*].id
}

output "nat_public_ips" {
  description = "Public addresses of the NAT gateways (the VPC's egress addresses)."
  value       = aws_eip.nat[*].public_ip
}

output "flow_log_group_name" {
  description = "Name of the CloudWatch Logs group receiving the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}

output "private_route_table_ids" {
  description = "Ids of the private subnets' route tables (one per zone), for route propagation from a VPN gateway."
  value       = aws_route_table.private[*].id
}
