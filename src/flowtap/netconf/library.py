"""What the server advertises: hello capabilities, RFC 8525/7895 yang-library, RFC 6022 schemas
and get-schema. Every advertised module, and every module one of them imports, can be fetched
with get-schema (what Cisco NSO's NED builder needs).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from flowtap.config.xmlutil import element
from flowtap.errors import NetconfRpcError

MONITORING_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
YANGLIB_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-library"

BASE_CAPABILITIES = (
    "urn:ietf:params:netconf:base:1.0",
    "urn:ietf:params:netconf:base:1.1",
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
    "urn:ietf:params:netconf:capability:validate:1.0",
    "urn:ietf:params:netconf:capability:validate:1.1",
    "urn:ietf:params:netconf:capability:startup:1.0",
    "urn:ietf:params:netconf:capability:xpath:1.0",
    "urn:ietf:params:netconf:capability:with-defaults:1.0"
    "?basic-mode=explicit&also-supported=report-all,report-all-tagged,trim",
    "urn:ietf:params:netconf:capability:notification:1.0",
    "urn:ietf:params:netconf:capability:interleave:1.0",
    # Junos's own: the Junos XML API subset (get-configuration, load-configuration, ...) is
    # spoken on this session (flowtap.netconf.junos_ops)
    "http://xml.juniper.net/netconf/junos/1.0",
)
NETCONF_FEATURES = "candidate,confirmed-commit,rollback-on-error,validate,startup,xpath"
# get-data takes with-defaults (RFC 8526 §3.1.1); origin is not implemented
MODULE_FEATURES = {"ietf-netconf": NETCONF_FEATURES, "ietf-netconf-nmda": "with-defaults"}

# Implemented modules, then import-only modules (RFC 8525 "import-only-module").
IMPLEMENTED = (
    "flowtap-system", "flowtap-interfaces", "flowtap-services", "ietf-netconf",
    "ietf-netconf-monitoring", "ietf-netconf-with-defaults", "ietf-netconf-notifications",
    "ietf-yang-library", "notifications", "nc-notifications", "ietf-netconf-nmda",
)  # fmt: skip
# ietf-origin (and the metadata extension it uses) only for ietf-netconf-nmda's imports: the
# origin feature is off, so no origin annotation is ever sent.
IMPORT_ONLY = ("ietf-inet-types", "ietf-yang-types", "ietf-datastores", "ietf-netconf-acm",
               "ietf-origin", "ietf-yang-metadata")  # fmt: skip
NOTIFICATION_NS = "urn:ietf:params:xml:ns:netmod:notification"

_FIELD = {
    "namespace": re.compile(r'^\s*namespace\s+"?([^";\s]+)"?\s*;', re.M),
    "prefix": re.compile(r'^\s*prefix\s+"?([^";\s]+)"?\s*;', re.M),
    "revision": re.compile(r'^\s*revision\s+"?(\d{4}-\d{2}-\d{2})"?', re.M),
    "version": re.compile(r'^\s*yang-version\s+"?([0-9.]+)"?\s*;', re.M),
}


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    revision: str
    namespace: str
    prefix: str
    yang_version: str
    text: str
    implemented: bool

    @property
    def features(self) -> str:
        return MODULE_FEATURES.get(self.name, "")


def _find_file(yang_dir: Path, name: str) -> Path:
    for folder in (yang_dir, yang_dir / "ietf"):
        found = sorted(folder.glob(f"{name}.yang")) + sorted(folder.glob(f"{name}@*.yang"))
        if found:
            return found[0]
    raise FileNotFoundError(f"YANG module {name} not found under {yang_dir}")


def _load(yang_dir: Path, name: str, implemented: bool) -> Module:
    text = _find_file(yang_dir, name).read_text()
    found = {key: pattern.search(text) for key, pattern in _FIELD.items()}
    return Module(
        name=name,
        revision=found["revision"].group(1) if found["revision"] else "",
        namespace=found["namespace"].group(1) if found["namespace"] else "",
        prefix=found["prefix"].group(1) if found["prefix"] else "",
        yang_version=found["version"].group(1) if found["version"] else "1",
        text=text,
        implemented=implemented,
    )


class Library:
    """The modules, the hello capability list and the library content-id."""

    def __init__(self, yang_dir: Path) -> None:
        self.modules = [_load(yang_dir, n, True) for n in IMPLEMENTED] + [
            _load(yang_dir, n, False) for n in IMPORT_ONLY
        ]
        digest = hashlib.sha256()
        for module in self.modules:
            digest.update(f"{module.name}@{module.revision}\n".encode())
        self.content_id = digest.hexdigest()[:16]
        self.capabilities = self._capabilities()

    def _capabilities(self) -> tuple[str, ...]:
        caps = list(BASE_CAPABILITIES)
        caps.append(
            "urn:ietf:params:netconf:capability:yang-library:1.0"
            f"?revision=2019-01-04&module-set-id={self.content_id}"
        )
        caps.append(
            "urn:ietf:params:netconf:capability:yang-library:1.1"
            f"?revision=2019-01-04&content-id={self.content_id}"
        )
        for module in self.modules:
            # RFC 7950 §5.6.4: YANG 1.1 modules are announced through the yang-library only
            if not module.implemented or module.yang_version == "1.1":
                continue
            uri = f"{module.namespace}?module={module.name}&revision={module.revision}"
            if module.features:
                uri += f"&features={module.features}"
            caps.append(uri)
        return tuple(caps)

    def get_schema(self, identifier: str, version: str | None, fmt: str | None) -> str:
        if fmt not in (None, "yang", "ncm:yang") and not (fmt or "").endswith(":yang"):
            raise NetconfRpcError(
                tag="invalid-value", message=f"Schema format {fmt!r} is not supported (yang only)",
                info={"bad-element": "format"},
            )  # fmt: skip
        for module in self.modules:
            if module.name == identifier and (not version or version == module.revision):
                return module.text
        raise NetconfRpcError(
            tag="invalid-value",
            message=f"No schema {identifier!r}" + (f" revision {version}" if version else ""),
            info={"bad-element": "identifier"},
        )

    # -- state data ------------------------------------------------------------------------------

    def schemas_element(self) -> etree._Element:
        m = MONITORING_NS
        schemas = element(f"{{{m}}}schemas", m)
        for module in self.modules:
            schema = etree.SubElement(schemas, f"{{{m}}}schema")
            etree.SubElement(schema, f"{{{m}}}identifier").text = module.name
            etree.SubElement(schema, f"{{{m}}}version").text = module.revision
            etree.SubElement(schema, f"{{{m}}}format").text = "yang"
            etree.SubElement(schema, f"{{{m}}}namespace").text = module.namespace
            etree.SubElement(schema, f"{{{m}}}location").text = "NETCONF"
        return schemas

    def yang_library(self) -> etree._Element:
        y = YANGLIB_NS
        ds = "urn:ietf:params:xml:ns:yang:ietf-datastores"
        lib = element(f"{{{y}}}yang-library", y, ds=ds)
        mset = etree.SubElement(lib, f"{{{y}}}module-set")
        etree.SubElement(mset, f"{{{y}}}name").text = "complete"
        for module in self.modules:
            tag = "module" if module.implemented else "import-only-module"
            el = etree.SubElement(mset, f"{{{y}}}{tag}")
            etree.SubElement(el, f"{{{y}}}name").text = module.name
            etree.SubElement(el, f"{{{y}}}revision").text = module.revision
            etree.SubElement(el, f"{{{y}}}namespace").text = module.namespace
            for feature in filter(None, module.features.split(",")):
                etree.SubElement(el, f"{{{y}}}feature").text = feature
        schema = etree.SubElement(lib, f"{{{y}}}schema")
        etree.SubElement(schema, f"{{{y}}}name").text = "complete"
        etree.SubElement(schema, f"{{{y}}}module-set").text = "complete"
        for name in ("running", "candidate", "startup", "operational"):
            datastore = etree.SubElement(lib, f"{{{y}}}datastore")
            etree.SubElement(datastore, f"{{{y}}}name").text = f"ds:{name}"
            etree.SubElement(datastore, f"{{{y}}}schema").text = "complete"
        etree.SubElement(lib, f"{{{y}}}content-id").text = self.content_id
        return lib

    @staticmethod
    def streams() -> etree._Element:
        """RFC 5277 nc-notifications: the one stream, NETCONF, without replay."""
        n = NOTIFICATION_NS
        netconf = element(f"{{{n}}}netconf", n)
        stream = etree.SubElement(etree.SubElement(netconf, f"{{{n}}}streams"), f"{{{n}}}stream")
        etree.SubElement(stream, f"{{{n}}}name").text = "NETCONF"
        etree.SubElement(stream, f"{{{n}}}description").text = (
            "Configuration changes (RFC 6470 netconf-config-change)")
        etree.SubElement(stream, f"{{{n}}}replaySupport").text = "false"
        return netconf

    def modules_state(self) -> etree._Element:
        """RFC 7895 (deprecated but still read by NSO and older tools)."""
        y = YANGLIB_NS
        state = element(f"{{{y}}}modules-state", y)
        etree.SubElement(state, f"{{{y}}}module-set-id").text = self.content_id
        for module in self.modules:
            el = etree.SubElement(state, f"{{{y}}}module")
            etree.SubElement(el, f"{{{y}}}name").text = module.name
            etree.SubElement(el, f"{{{y}}}revision").text = module.revision
            etree.SubElement(el, f"{{{y}}}namespace").text = module.namespace
            for feature in filter(None, module.features.split(",")):
                etree.SubElement(el, f"{{{y}}}feature").text = feature
            conformance = "implement" if module.implemented else "import"
            etree.SubElement(el, f"{{{y}}}conformance-type").text = conformance
        return state
