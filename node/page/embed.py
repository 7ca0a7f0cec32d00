#!/usr/bin/env python3
"""Embeds a file as a NUL-terminated C char array: embed.py INPUT OUTPUT_C OUTPUT_H SYMBOL."""
import sys

src, out_c, out_h, sym = sys.argv[1:5]
data = open(src, "rb").read()
with open(out_h, "w") as h:
    h.write("/* Generated from %s by embed.py; do not edit. */\n" % src.split("/")[-1])
    h.write("#ifndef RAFTMQ_%s_H\n#define RAFTMQ_%s_H\n" % (sym.upper(), sym.upper()))
    h.write("extern const char %s[];\n#endif\n" % sym)
with open(out_c, "w") as c:
    c.write("/* Generated from %s by embed.py; do not edit. */\n" % src.split("/")[-1])
    c.write('#include "%s"\n' % out_h.split("/")[-1])
    # A byte array, not a string literal: ISO C caps string literals at
    # 4095 bytes (-Woverlength-strings), and the page is longer.
    c.write("const char %s[] = {\n" % sym)
    data += b"\0"
    for i in range(0, len(data), 12):
        c.write("\t" + " ".join("'\\x%02x'," % b for b in data[i:i + 12]) + "\n")
    c.write("};\n")
