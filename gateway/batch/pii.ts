// Removes personal data from batch results (profiles with redact_pii: true): email
// addresses, phone numbers, payment card numbers (Luhn-checked), IBANs and IP addresses
// become placeholders such as [EMAIL]. Applied to every string of a response body
// before the line is stored, so the data reaches neither the database nor the file.
import { isIPv4, isIPv6 } from "node:net";

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
// Two letters, two check digits, then 11 to 30 letters or digits, optionally in groups of four.
const IBAN = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b/g;
const CARD = /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])/g;
const IPV4 = /(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)/g;
const IPV6 = /(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:)?(?![\w:])/g;
// International (+49 151 2345678, +14155550123) or grouped national numbers ((030) 1234-5678, 555-123-4567).
const PHONE = /(?<![\w+])(?:\+\d{7,15}|(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,8}){1,4})(?![\w])/g;
const DATE_LIKE = /^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$/;

function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

function ibanValid(text: string): boolean {
  const s = text.replace(/ /g, "");
  if (s.length < 15 || s.length > 34) return false;
  const moved = s.slice(4) + s.slice(0, 4);
  let rest = 0;
  for (const ch of moved) {
    const v = ch >= "A" && ch <= "Z" ? String(ch.charCodeAt(0) - 55) : ch;
    for (const digit of v) rest = (rest * 10 + (digit.charCodeAt(0) - 48)) % 97;
  }
  return rest === 1;
}

/** The text with personal data replaced by placeholders. */
export function redactText(text: string): string {
  return text
    .replace(EMAIL, "[EMAIL]")
    .replace(IBAN, (m) => (ibanValid(m) ? "[IBAN]" : m))
    .replace(CARD, (m) => {
      const digits = m.replace(/[ -]/g, "");
      return luhn(digits) ? "[CARD]" : m;
    })
    .replace(IPV4, (m) => (isIPv4(m) ? "[IP]" : m))
    .replace(IPV6, (m) => (isIPv6(m) ? "[IP]" : m))
    .replace(PHONE, (m) => {
      const digits = m.replace(/\D/g, "").length;
      return digits >= 7 && digits <= 15 && !DATE_LIKE.test(m) ? "[PHONE]" : m;
    });
}

/** A JSON value with every string (keys left alone) redacted. */
export function redactValue<T>(value: T): T {
  if (typeof value === "string") return redactText(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactValue(v)) as T;
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactValue(v);
    return out as T;
  }
  return value;
}
