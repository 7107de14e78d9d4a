"""The vocabulary of the CEL expression generator (``tests/e2e/celgen.py``): what the test's devices publish
(the simulated H100 nodes of ``rendered_slices()``) and the constants the generator draws from, valid and not."""

from __future__ import annotations

DRIVER = "gpu.gpupolicy.dev"
A = f'device.attributes["{DRIVER}"]'
C = f'device.capacity["{DRIVER}"]'
K8S = 'device.attributes["resource.kubernetes.io"]'

# What the rendered devices publish. The second element says whether every device has it.
STRINGS = [
    ("productName", True),
    ("type", True),
    ("uuid", True),
    ("brand", True),
    ("architecture", True),
    ("sharing", True),
    ("profile", False),
    ("parentUUID", False),
]
K8S_STRINGS = ["pciBusID", "pcieRoot"]
VERSIONS = ["driverVersion", "cudaDriverVersion", "cudaComputeCapability"]
QUANTITIES = [
    ("memory", True),
    ("multiprocessors", True),
    ("copyEngines", True),
    ("decoders", True),
    ("encoders", True),
    ("jpegEngines", True),
    ("ofaEngines", True),
    ("shares", False),
]
MISSING = ["nokey", "memory_", "Type", "count"]

STRING_LITERALS = [
    '""',
    '"a"',
    '"gpu"',
    '"mig"',
    '"NVIDIA H100 80GB HBM3"',
    '"1g.10gb"',
    '"H100"',
    '"Hopper"',
    '"timeSlicing"',
    '"a,b,,c"',
    '" x "',
    '"héllo"',
    '"日本"',
    '"\\u00e9"',
    '"tab\\there"',
    "'single'",
    'r"raw\\n"',
    '"""tri\nple"""',
    '"GPU-"',
    '"0000:"',
]
INTS = ["0", "1", "-1", "2", "3", "7", "42", "-5", "100", "1024", "9223372036854775807", "-9223372036854775808"]
INTS_OUT_OF_RANGE = ["9223372036854775808", "-9223372036854775809", "0x8000000000000000"]
UINTS = ["0u", "1u", "2u", "10u", "18446744073709551615u", "0x10u"]
DOUBLES = ["0.0", "-0.0", "1.5", "2.0", "-3.25", "1e10", "1.7976931348623157e308", "1e-300", "0.1", "100.0"]
QUANTITY_TEXT = ["1", "0", "1Gi", "40Gi", "80Gi", "1.5Gi", "100m", "500Mi", "1k", "2e3", "1E", "0.5", "-1", "132"]
QUANTITY_BAD = ["1gi", "bad", "", " 1", "1.2.3"]
SEMVER_TEXT = ["1.0.0", "550.0.0", "580.95.5", "570.124.6", "9.0.0", "12.8.0", "1.2.3-rc.1", "1.2.3+build"]
SEMVER_LOOSE = ["v1.2", "1", "01.2.3", "v580.95.5"]
SEMVER_BAD = ["1.2", "bad", "v1.0.0", ""]
IPS = ["10.0.0.1", "127.0.0.1", "::1", "fe80::1", "0.0.0.0", "192.168.0.1", "2001:db8::1", "224.0.0.1", "ff02::1"]
IPS_BAD = ["010.0.0.1", "1.2.3", "::ffff:1.2.3.4", "fe80::1%eth0", "x"]
CIDRS = ["10.0.0.0/8", "192.168.0.0/16", "::1/128", "2001:db8::/32", "10.1.2.3/8", "0.0.0.0/0"]
CIDRS_BAD = ["10.0.0.0/33", "10.0.0.0", "x/8"]
URLS = ["https://example.com:8443/a/b?x=1", "http://[::1]:80/", "https://user@host/p%20q", "/relative", "file:///x"]
URLS_BAD = ["example.com", "", "https://a b"]
REGEXES = ["^.*h100.*$", "H100", "[0-9]+", "^GPU-", "(?i)nvidia", "a|b", "^$", "\\\\d{2}", "x(", "(a)\\\\1"]
TYPE_NAMES = ["int", "string", "bool", "double", "list", "map", "uint", "bytes", "type"]
URL_GETTERS = ["getScheme", "getHost", "getHostname", "getPort", "getEscapedPath", "getQuery"]
FORMATS = ["%s", "%d", "%f", "%.2f", "%e", "%x", "%X", "%o", "%b", "%%", "%.0f", "%.3e", "%s-%d", "%q", "%"]

Scope = dict[str, str]  # comprehension / bind variable -> its static type

SCALARS = ["bool", "int", "uint", "double", "string", "bytes"]
LIB = ["quantity", "semver", "ip", "cidr", "url"]
