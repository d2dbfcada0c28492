# Prints "<image>\t<name>\t<version>" for each entry of extensions.yaml's `layers` (imager spec
# §4.6), as go-yaml v4 or PyYAML write it: block style, any indentation, keys in any order, values
# optionally quoted. Nested keys (compatibility, extraInfo's schematic YAML) are skipped by indent.
function indent_of(s) { match(s, /^ */); return RLENGTH }
function unquote(v) {
    sub(/^ +/, "", v); sub(/ +$/, "", v)
    if (v ~ /^'.*'$/ || v ~ /^".*"$/) v = substr(v, 2, length(v) - 2)
    return v
}
function flush() {
    if (image != "") print image "\t" name "\t" version
    image = ""; name = ""; version = ""
}
BEGIN { in_layers = 0; item = -1; key = -1; meta = 0; child = -1 }
{
    line = $0
    sub(/\r$/, "", line)
    if (line ~ /^ *(#.*)?$/) next
    ind = indent_of(line)
    text = substr(line, ind + 1)
    if (!in_layers) {
        if (ind == 0 && text ~ /^layers:/) in_layers = 1
        next
    }
    if (ind == 0 && text !~ /^- /) { flush(); in_layers = 0; next }
    if (text ~ /^- / && (item < 0 || ind == item)) {
        flush()
        item = ind
        text = substr(text, 3)
        pad = indent_of(text)
        text = substr(text, pad + 1)
        ind = item + 2 + pad
        key = ind
        meta = 0
    }
    if (ind == key) {
        meta = 0
        if (text ~ /^image:/) image = unquote(substr(text, 7))
        else if (text ~ /^metadata:/) { meta = 1; child = -1 }
        next
    }
    if (meta && ind > key) {
        if (child < 0) child = ind
        if (ind != child) next
        if (text ~ /^name:/) name = unquote(substr(text, 6))
        else if (text ~ /^version:/) version = unquote(substr(text, 9))
    }
}
END { flush() }
