"""The function libraries of the Kubernetes CEL environment: the overload table, strings, regex, URL, IP/CIDR."""
