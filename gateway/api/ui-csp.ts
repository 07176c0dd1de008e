// The dashboard's Content-Security-Policy: scripts, styles and connections from the
// gateway's own origin only, no inline code, no framing. One definition, imported by the
// gateway (gateway/api/ui.ts sends it with /ui) and by the desktop app (electron/security.ts
// adds it to the gateway's responses that have none): pure, no imports, so the app's bundle
// takes it as it is.
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");
