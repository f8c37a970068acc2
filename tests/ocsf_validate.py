#!/usr/bin/env python3
"""ocsf_validate.py - validate OCSF events against the OCSF source schema.

The schema directory is the OCSF schema repository layout (events/, objects/,
profiles/, dictionary.json, categories.json; ../shared/spec/ocsf-schema-1.8.0).
The source schema is resolved here the way the OCSF server compiles it:

- a class is its file plus every class it `extends` (child attributes
  override parent ones key by key), `$include`d profile files add their
  attributes (tagged with the profile's name unless the class re-declares the
  attribute), the dictionary gives each attribute its type, `is_array` and
  enum; class_uid = category uid * 1000 + class uid;
- an object is likewise its file plus its `extends` chain and includes, with
  `constraints` (at_least_one, just_one).

An event is checked for: required attributes (class and nested objects),
types (string/int/long/float/boolean/timestamp/datetime/ip/port/uuid and the
types derived from them, objects, arrays), enum values of *_id attributes,
class_uid/category_uid/type_uid consistency, profile attributes only when the
profile is listed in metadata.profiles, and no attribute outside the class,
its profiles and the nested objects' definitions except inside `unmapped`.

Used by the integration tests (import and call Schema(dir).validate(event)),
and as a command: `ocsf_validate.py SCHEMA_DIR FILE.ndjson...` prints each
problem and exits 1 when there is one.
"""

import ipaddress
import json
import os
import re
import sys

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


class Schema:
    """The resolved schema of one OCSF source tree."""

    def __init__(self, root):
        self.root = root
        self.dictionary = self._load("dictionary.json")
        self.dict_attrs = self.dictionary["attributes"]
        self.types = self.dictionary["types"]["attributes"]
        cats = self._load("categories.json")["attributes"]
        self.category_uid = {name: c["uid"] for name, c in cats.items()}
        self._class_files = {}
        for dirpath, _, files in os.walk(os.path.join(root, "events")):
            for f in files:
                if f.endswith(".json"):
                    d = self._load(os.path.relpath(os.path.join(dirpath, f), root))
                    self._class_files[d["name"]] = d
        self._object_files = {}
        for f in os.listdir(os.path.join(root, "objects")):
            if f.endswith(".json"):
                d = self._load(os.path.join("objects", f))
                self._object_files[d["name"]] = d
        self._classes = {}
        self._objects = {}
        self.classes_by_uid = {}
        for name in self._class_files:
            c = self.klass(name)
            if c["uid"] is not None:
                self.classes_by_uid[c["class_uid"]] = c

    def _load(self, rel):
        with open(os.path.join(self.root, rel), encoding="utf-8") as f:
            return json.load(f)

    @staticmethod
    def _merge_one(old, new):
        """An attribute's definition `new` over `old`: keys replaced, enums
        extended (a class adds its values to the base event's 0 and 99)."""
        merged = dict(old)
        merged.update(new)
        if "enum" in old and "enum" in new:
            merged["enum"] = dict(old["enum"], **new["enum"])
        return merged

    def _merge_attrs(self, base, attrs):
        """Merge a file's attributes (with $include) over `base` in place."""
        for inc in attrs.get("$include", []):
            prof = self._load(inc)
            pname = prof["name"] if inc.startswith("profiles/") else None
            for k, v in prof.get("attributes", {}).items():
                if k == "$include":
                    continue
                merged = self._merge_one(base.get(k, {}), v)
                if pname and "profile" not in v:
                    merged["profile"] = pname
                base[k] = merged
        for k, v in attrs.items():
            if k == "$include":
                continue
            base[k] = self._merge_one(base.get(k, {}), v)

    def _finish(self, attrs):
        """Attach dictionary type, is_array and enum to each attribute."""
        out = {}
        for k, v in attrs.items():
            d = self.dict_attrs.get(k, {})
            a = dict(d)
            a.update(v)
            if "enum" in d:
                a["enum"] = dict(d["enum"], **v.get("enum", {}))
            if "type" not in a:
                raise ValueError("attribute %s has no type in the dictionary" % k)
            out[k] = a
        return out

    def klass(self, name):
        """The resolved class `name` (dict with attributes, uid, class_uid...)."""
        if name in self._classes:
            return self._classes[name]
        chain = []
        f = self._class_files[name]
        while True:
            chain.append(f)
            if "extends" not in f:
                break
            f = self._class_files[f["extends"]]
        attrs = {}
        category = None
        uid = None
        for f in reversed(chain):
            self._merge_attrs(attrs, f.get("attributes", {}))
            category = f.get("category", category)
        uid = chain[0].get("uid")
        cat_uid = self.category_uid.get(category, 0)
        # the compiler derives these enums per class; checked for consistency in validate()
        for k in ("class_uid", "category_uid", "type_uid"):
            if k in attrs:
                attrs[k] = {x: y for x, y in attrs[k].items() if x != "enum"}
        c = {
            "name": name,
            "uid": uid,
            "category": category,
            "category_uid": cat_uid,
            "class_uid": cat_uid * 1000 + uid if uid is not None else 0,
            "attributes": self._finish(attrs),
        }
        self._classes[name] = c
        return c

    def obj(self, name):
        """The resolved object `name`."""
        if name in self._objects:
            return self._objects[name]
        chain = []
        f = self._object_files[name]
        while True:
            chain.append(f)
            ext = f.get("extends")
            if not ext or ext == "object" or ext not in self._object_files:
                break
            f = self._object_files[ext]
        attrs = {}
        constraints = {}
        for f in reversed(chain):
            self._merge_attrs(attrs, f.get("attributes", {}))
            if "constraints" in f:
                constraints = f["constraints"]
        o = {"name": name, "attributes": self._finish(attrs), "constraints": constraints}
        self._objects[name] = o
        return o

    # ------------------------------------------------------------ validation

    def base_type(self, t):
        """Follow derived types (e.g. port_t -> integer_t) to a primitive."""
        seen = set()
        while t in self.types and "type" in self.types[t] and t not in seen:
            seen.add(t)
            t = self.types[t]["type"]
        return t

    def _check_scalar(self, path, t, v, errs):
        base = self.base_type(t)
        info = self.types.get(t, {})
        if base in ("integer_t", "long_t", "timestamp_t", "port_t"):
            lo, hi = INT32 if base == "integer_t" else INT64
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                errs.append("%s: %r is not a %s" % (path, v, t))
                return
            if t == "port_t" and not 0 <= v <= 65535:
                errs.append("%s: %r is not a port" % (path, v))
            if "range" in info and not info["range"][0] <= v <= info["range"][1]:
                errs.append("%s: %r outside %s" % (path, v, info["range"]))
            return
        if base == "float_t":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                errs.append("%s: %r is not a float" % (path, v))
            return
        if base == "boolean_t":
            if not isinstance(v, bool):
                errs.append("%s: %r is not a boolean" % (path, v))
            return
        if base == "json_t":
            return
        if base == "object_t":
            if not isinstance(v, dict):
                errs.append("%s: %r is not an object" % (path, v))
            return
        if base != "string_t":
            errs.append("%s: unknown type %s" % (path, t))
            return
        if not isinstance(v, str):
            errs.append("%s: %r is not a string (%s)" % (path, v, t))
            return
        if t == "ip_t":
            try:
                ipaddress.ip_address(v)
            except ValueError:
                errs.append("%s: %r is not an IP address" % (path, v))
            return
        if "regex" in info and not re.search(info["regex"], v):
            errs.append("%s: %r does not match the %s pattern" % (path, v, t))
        if "max_len" in info and len(v) > info["max_len"]:
            errs.append("%s: longer than %d" % (path, info["max_len"]))

    def _check_value(self, path, a, v, profiles, errs):
        t = a["type"]
        if a.get("is_array"):
            if not isinstance(v, list):
                errs.append("%s: not an array" % path)
                return
            for i, x in enumerate(v):
                self._check_one(path + "[%d]" % i, a, t, x, profiles, errs)
        else:
            self._check_one(path, a, t, v, profiles, errs)

    def _check_one(self, path, a, t, v, profiles, errs):
        if v is None:
            errs.append("%s: null" % path)
            return
        if t == "object_t" or t in self.types:
            self._check_scalar(path, t, v, errs)
            if "enum" in a and (t in ("integer_t", "long_t") or a.get("_enum_strict")):
                if str(v) not in a["enum"]:
                    errs.append("%s: %r is not one of %s" % (path, v, sorted(a["enum"])))
            return
        if t not in self._object_files:
            errs.append("%s: unknown type %s" % (path, t))
            return
        if not isinstance(v, dict):
            errs.append("%s: %r is not an object (%s)" % (path, v, t))
            return
        self._check_attrs(path, self.obj(t), v, profiles, errs)

    def _check_attrs(self, path, spec, ev, profiles, errs):
        attrs = spec["attributes"]
        for k, a in attrs.items():
            if a.get("requirement") == "required" and k not in ev:
                if a.get("profile") and a["profile"] not in profiles:
                    continue
                errs.append("%s%s: required attribute missing" % (path + "." if path else "", k))
        for k, v in ev.items():
            p = path + "." + k if path else k
            if k not in attrs:
                errs.append("%s: not an attribute of %s" % (p, spec["name"]))
                continue
            a = attrs[k]
            if a.get("profile") and a["profile"] not in profiles:
                errs.append("%s: attribute of profile %s, which metadata.profiles does not list"
                            % (p, a["profile"]))
                continue
            if k == "unmapped":
                if not isinstance(v, dict):
                    errs.append("%s: not an object" % p)
                continue
            self._check_value(p, a, v, profiles, errs)
            # a sibling caption of an enum (`status` for `status_id`) says
            # "Other" only with 99
        cons = spec.get("constraints") or {}
        if "at_least_one" in cons and not any(k in ev for k in cons["at_least_one"]):
            errs.append("%s: needs at least one of %s" % (path or "event", cons["at_least_one"]))
        if "just_one" in cons and sum(k in ev for k in cons["just_one"]) != 1:
            errs.append("%s: needs exactly one of %s" % (path or "event", cons["just_one"]))

    def validate(self, ev):
        """Return the list of problems of one event (empty when valid)."""
        if not isinstance(ev, dict):
            return ["event: not a JSON object"]
        cu = ev.get("class_uid")
        c = self.classes_by_uid.get(cu)
        if c is None:
            return ["class_uid: %r is not a class of this schema" % (cu,)]
        errs = []
        md = ev.get("metadata") if isinstance(ev.get("metadata"), dict) else {}
        profiles = set(md.get("profiles") or [])
        unknown = profiles - {"cloud", "datetime", "host", "osint", "security_control", "trace",
                              "ai_operation", "container", "data_classification", "incident",
                              "load_balancer", "network_proxy"}
        if unknown:
            errs.append("metadata.profiles: unknown profile(s) %s" % sorted(unknown))
        self._check_attrs("", c, ev, profiles, errs)
        if ev.get("category_uid") != c["category_uid"]:
            errs.append("category_uid: %r, class %d is in category %d"
                        % (ev.get("category_uid"), cu, c["category_uid"]))
        act = ev.get("activity_id")
        if isinstance(act, int) and ev.get("type_uid") != cu * 100 + act:
            errs.append("type_uid: %r, expected class_uid*100+activity_id = %d"
                        % (ev.get("type_uid"), cu * 100 + act))
        # a *_id enum with a caption sibling: 99 (Other) needs the caption
        for k, a in c["attributes"].items():
            if k.endswith("_id") and "enum" in a and ev.get(k) == 99:
                sib = k[:-3]
                if sib in c["attributes"] and sib not in ev:
                    errs.append("%s: 99 (Other) without %s" % (k, sib))
        return errs


def main(argv):
    if len(argv) < 3:
        print("usage: ocsf_validate.py SCHEMA_DIR FILE.ndjson...", file=sys.stderr)
        return 2
    schema = Schema(argv[1])
    bad = 0
    for path in argv[2:]:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                for e in schema.validate(json.loads(line)):
                    print("%s:%d: %s" % (path, n, e))
                    bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
