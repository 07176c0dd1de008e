// Removes personal data from batch results (profiles with redact_pii: true): email
// addresses, phone numbers, payment card numbers (Luhn-checked), IBANs (country length and
// mod 97) and IP addresses become placeholders such as [EMAIL]. Applied to every string of
// a response body before the line is stored, so the data reaches neither the database nor
// the file.
//
// Linear time on any input (a model's output is attacker-controlled text): no pattern
// nests one quantifier in another, every pattern that can run long is bounded, and each
// one's look-behind stops it from starting again in the middle of a run it already read.
// The patterns only find candidates; the judging (digit counts, groups, checksums) is
// plain code on the bounded candidate.
import { isIPv4, isIPv6 } from "node:net";

// A local part, then a domain: Unicode letters allowed (IDN addresses such as jürgen@müller.de).
const EMAIL = /(?<![\p{L}\p{N}._%+-])[\p{L}\p{N}._%+-]{1,64}@[\p{L}\p{N}.-]{1,253}/gu;
// Two letters, two check digits, then letters or digits, maybe grouped with spaces or hyphens, any case.
const IBAN = /(?<![\p{L}\p{N}_])[A-Za-z]{2}\d{2}[A-Za-z0-9 -]{11,42}/gu;
// 13 to 19 digits, maybe grouped with spaces, hyphens or dots.
const CARD = /(?<![\p{L}\p{N}_.-])\d[\d .-]{11,36}\d/gu;
// "version 1.2.3.4" / "v1.2.3.4" is a version number written like an address: left alone.
const NOT_A_VERSION = String.raw`(?<!\b(?:[Vv]|[Vv]ersion|VERSION)[ :]{0,2})`;
const IPV4 = new RegExp(String.raw`${NOT_A_VERSION}(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\d|\.\d)`, "g");
const IPV6 = /(?<![\w:])[0-9A-Fa-f:]{2,39}(?![\w:])/g;
// A run of digits with the separators phone numbers use: +33 6 12 34 56 78, (030) 1234-5678, 0151/2345678, 4155550123.
const PHONE = new RegExp(String.raw`${NOT_A_VERSION}(?<![\p{L}\p{N}_+./-])\+?\(?\d[\d ()./-]{5,28}\d`, "gu");

const DATE_START = /^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})(?!\d)/;

// Length of the IBAN of each country that issues them (ISO 13616 registry).
const IBAN_LENGTH: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21, CR: 22, CY: 28, CZ: 24,
  DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28,
  HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20,
  LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25,
  QA: 29, RO: 24, RS: 22, SA: 24, SC: 31, SE: 24, SI: 19, SK: 24, SM: 27, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26, UA: 29,
  VA: 22, VG: 24, XK: 20,
};

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

function ibanValid(compact: string): boolean {
  const s = compact.toUpperCase();
  if (IBAN_LENGTH[s.slice(0, 2)] !== s.length) return false;
  const moved = s.slice(4) + s.slice(0, 4);
  let rest = 0;
  for (const ch of moved) {
    const v = ch >= "A" && ch <= "Z" ? String(ch.charCodeAt(0) - 55) : ch;
    for (const digit of v) rest = (rest * 10 + (digit.charCodeAt(0) - 48)) % 97;
  }
  return rest === 1;
}

/** An ISBN-13 (978/979 and its check digit) or a hyphenated ISBN-10: a book, not a phone. */
function isIsbn(digits: string, hyphenated: boolean): boolean {
  if (digits.length === 13 && /^97[89]/.test(digits)) {
    let sum = 0;
    for (let i = 0; i < 13; i++) sum += (digits.charCodeAt(i) - 48) * (i % 2 === 0 ? 1 : 3);
    return sum % 10 === 0;
  }
  if (digits.length === 10 && hyphenated) {
    let sum = 0;
    for (let i = 0; i < 10; i++) sum += (digits.charCodeAt(i) - 48) * (10 - i);
    return sum % 11 === 0;
  }
  return false;
}

interface Group {
  digits: string;
  /** End of the group in the candidate (after a closing parenthesis that belongs to it). */
  end: number;
  /** The separator before it ("" for the first). */
  sep: string;
}

/**
 * Splits a candidate into groups of letters or digits joined by single separators (spaces,
 * hyphens, dots, slashes; parentheses around one group). Stops at the first place that is
 * not such a join (two separators in a row, a stray parenthesis).
 */
function groups(candidate: string, alnum: RegExp): Group[] {
  const out: Group[] = [];
  let i = 0;
  let sep = "";
  while (i < candidate.length) {
    const open = candidate[i] === "(";
    let j = open ? i + 1 : i;
    const start = j;
    while (j < candidate.length && alnum.test(candidate[j]!)) j++;
    if (j === start) break;
    if (open) {
      if (candidate[j] !== ")") break;
      j++;
    }
    out.push({ digits: candidate.slice(start, open ? j - 1 : j), end: j, sep: open ? sep + "(" : sep });
    if (j >= candidate.length) break;
    const c = candidate[j]!;
    if (!" .-/".includes(c)) break;
    sep = c;
    i = j + 1;
  }
  return out;
}

const DIGIT = /\d/;
const ALNUM = /[A-Za-z0-9]/;

/**
 * Replaces what `judge` accepts. `judge` sees a candidate and the character after it and
 * answers how long a prefix of it is the datum (0: none). After a refusal the whole candidate
 * is skipped: a part of a number that is not a phone number (an ISBN's middle) is not one either.
 */
function replaceJudged(text: string, re: RegExp, placeholder: string, judge: (candidate: string, next: string) => number): string {
  let out = "";
  let copied = 0;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const n = judge(m[0], text[m.index + m[0].length] ?? "");
    if (n > 0) {
      out += text.slice(copied, m.index) + placeholder;
      copied = m.index + n;
    }
    re.lastIndex = m.index + (n > 0 ? n : m[0].length);
  }
  return copied === 0 ? text : out + text.slice(copied);
}

function judgeEmail(candidate: string): number {
  const at = candidate.indexOf("@");
  // Sentence punctuation after an address is not part of it.
  let end = candidate.length;
  while (end > at + 1 && (candidate[end - 1] === "." || candidate[end - 1] === "-")) end--;
  const labels = candidate.slice(at + 1, end).split(".");
  if (labels.length < 2 || labels.some((l) => l === "" || l.startsWith("-"))) return 0;
  const tld = labels.at(-1)!;
  return /^(?:\p{L}{2,63}|xn--[a-z0-9-]{1,59})$/iu.test(tld) ? end : 0;
}

function judgeIban(candidate: string, next: string): number {
  const gs = groups(candidate, ALNUM);
  // The last group may have been cut by the pattern's length bound.
  if (gs.length > 0 && gs.at(-1)!.end === candidate.length && ALNUM.test(next)) gs.pop();
  const want = IBAN_LENGTH[candidate.slice(0, 2).toUpperCase()];
  if (want === undefined || gs.some((g) => g.sep.includes("(") || g.sep === "." || g.sep === "/")) return 0;
  let compact = "";
  for (const g of gs) {
    compact += g.digits;
    if (compact.length === want) return ibanValid(compact) ? g.end : 0;
    if (compact.length > want) return 0;
  }
  return 0;
}

function judgeCard(candidate: string, next: string): number {
  if (DIGIT.test(next)) return 0;
  const gs = groups(candidate, DIGIT);
  if (gs.some((g) => g.sep.includes("(") || g.sep === "/")) return 0;
  // One separator throughout (4111.1111.1111.1111, 4111 1111 1111 1111), longest first.
  for (let k = gs.length; k >= 1; k--) {
    const part = gs.slice(0, k);
    if (new Set(part.slice(1).map((g) => g.sep)).size > 1) continue;
    const digits = part.map((g) => g.digits).join("");
    if (digits.length >= 13 && digits.length <= 19 && luhn(digits)) return part.at(-1)!.end;
  }
  return 0;
}

function judgePhone(candidate: string): number {
  const international = candidate.startsWith("+");
  const body = international ? candidate.slice(1) : candidate;
  const offset = international ? 1 : 0;
  if (DATE_START.test(body)) return 0;
  const gs = groups(body, DIGIT);
  // Longest first: the whole number goes, country code and all.
  for (let k = gs.length; k >= 1; k--) {
    const part = gs.slice(0, k);
    const digits = part.map((g) => g.digits).join("");
    if (digits.length < 7 || digits.length > 15) continue;
    const parens = part.some((g) => g.sep.includes("("));
    const seps = part.slice(1).map((g) => g.sep.replace("(", ""));
    // Dots join the groups of 555.123.4567 only: 3.14159265 is a decimal, "12.50 13.75" are prices.
    if (seps.includes(".") && (seps.some((s) => s !== ".") || k < 3)) continue;
    if (k === 1 && !international && digits.length < 10) continue;
    // A national number's later groups have two digits or more ("1 2 3 4 5 6 7" is a count).
    if (!international && !parens && part.slice(1).some((g) => g.digits.length < 2)) continue;
    if (isIsbn(digits, seps.includes("-"))) return 0;
    // A shorter number is only cut off where the style changes (555-123-4567 030-1234): one
    // with the same separators throughout (a 16-digit card that fails Luhn) is not a phone number.
    if (k < gs.length && seps.includes(gs[k]!.sep.replace("(", ""))) continue;
    return offset + part.at(-1)!.end;
  }
  return 0;
}

/** The text with personal data replaced by placeholders. */
export function redactText(text: string): string {
  let out = replaceJudged(text, EMAIL, "[EMAIL]", judgeEmail);
  out = replaceJudged(out, IBAN, "[IBAN]", judgeIban);
  out = replaceJudged(out, CARD, "[CARD]", judgeCard);
  out = out.replace(IPV4, (m) => (isIPv4(m) ? "[IP]" : m));
  out = out.replace(IPV6, (m) => (m.includes(":") && isIPv6(m) ? "[IP]" : m));
  return replaceJudged(out, PHONE, "[PHONE]", judgePhone);
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
