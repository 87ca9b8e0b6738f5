// Boa 0.22's RegExp.prototype.source puts a backslash before every "/" of
// the pattern, even one already escaped: for /a\/b/ it returns a\\/b (a
// backslash, then "/") where the standard says a\/b. marked builds most of
// its rules from the .source of other regular expressions, so on Boa its
// GFM autolinks (https://...) never match. This getter removes the extra
// backslashes again; on an engine whose .source is right it is not installed.
// Imported before marked, so marked's rules are built with it.

const descriptor = Object.getOwnPropertyDescriptor(RegExp.prototype, "source");

if (descriptor && typeof descriptor.get === "function" && /\//.source !== "\\/") {
  const source = descriptor.get;
  Object.defineProperty(RegExp.prototype, "source", {
    ...descriptor,
    get() {
      const text = source.call(this);
      // Every "/" came with one added backslash right before it.
      return typeof text === "string" ? text.replace(/\\\//g, "/") : text;
    },
  });
}
