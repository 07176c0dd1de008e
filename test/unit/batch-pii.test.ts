// Redaction of personal data from batch results (profiles with redact_pii: true).
import { describe, expect, it } from "vitest";
import { redactText, redactValue } from "../../gateway/batch/pii.ts";

describe("batch PII redaction", () => {
  it("replaces emails, phone numbers, card numbers, IBANs and IP addresses", () => {
    expect(redactText("mail jane.doe+x@example.co.uk now")).toBe("mail [EMAIL] now");
    expect(redactText("call +49 151 2345678, (030) 1234-5678, 555-123-4567 or +14155550123")).toBe("call [PHONE], [PHONE], [PHONE] or [PHONE]");
    expect(redactText("card 4111 1111 1111 1111 / 5500-0000-0000-0004 / 378282246310005")).toBe("card [CARD] / [CARD] / [CARD]");
    expect(redactText("IBAN DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432")).toBe("IBAN [IBAN] and [IBAN]");
    expect(redactText("from 192.168.1.20, 2001:db8::1 and ::1.")).toBe("from [IP], [IP] and [IP].");
  });

  it("leaves look-alikes that are not personal data alone", () => {
    // Failing checksums (Luhn, IBAN mod 97), dates, times, prices, short numbers, out-of-range octets.
    for (const text of [
      "card 4111 1111 1111 1112",
      "IBAN DE00 3704 0044 0532 0130 00",
      "on 2024-01-15 at 12:30:45 we sold 1200 units for 3.50 each, order 12345",
      "999.1.2.3 is not an address",
    ]) {
      expect(redactText(text)).toBe(text);
    }
  });

  it("catches the shapes people actually write: bare, slashed, lowercase, grouped, dotted, unicode", () => {
    expect(redactText("call 4155550123 now")).toBe("call [PHONE] now");
    expect(redactText("Handy 0151/2345678.")).toBe("Handy [PHONE].");
    expect(redactText("IBAN de89370400440532013000, thanks")).toBe("IBAN [IBAN], thanks");
    expect(redactText("IBAN DE89-3704-0044-0532-0130-00 or de89 3704 0044 0532 0130 00")).toBe("IBAN [IBAN] or [IBAN]");
    expect(redactText("card 4111.1111.1111.1111.")).toBe("card [CARD].");
    expect(redactText("mail jürgen@müller.de or 用户@例子.广告 today")).toBe("mail [EMAIL] or [EMAIL] today");
    // The whole number goes, country code and first digit too.
    expect(redactText("appelez +33 6 12 34 56 78!")).toBe("appelez [PHONE]!");
    // Two numbers in a row are two numbers.
    expect(redactText("555-123-4567 030-1234")).toBe("[PHONE] [PHONE]");
  });

  it("leaves versions, ISBNs, decimals, prices and counts alone (a bare dotted quad is still an address)", () => {
    for (const text of [
      "version 1.2.3.4 and v10.0.0.1",
      "ISBN 978-3-16-148410-0 and 0-306-40615-2",
      "pi is 3.14159265358, prices 12.50 13.75 14.20 15.00, count 1 2 3 4 5 6 7 8",
      "on 2024-01-15 12:30 the hash ab12cdef0123456789abcdef01234567 changed",
    ]) {
      expect(redactText(text)).toBe(text);
    }
    expect(redactText("ping 10.0.0.1")).toBe("ping [IP]");
  });

  it("stays linear on 256 kB of adversarial text (no pattern can backtrack without bound)", { timeout: 60_000 }, () => {
    // Each of these made some earlier pattern scan ahead from every position; now each finishes.
    // 256 kB keeps the suite quick and still catches a quadratic pattern: the old email
    // pattern took 0.7 s on 20 kB, so about 2 minutes here, past the timeout.
    const mb = 1 << 18;
    for (const unit of ["a", "1", "1 ", "a@", "1.", "+1 (", "DE89 ", ":", "a:", "x@a.", "1-", "4111 "]) {
      const text = unit.repeat(Math.ceil(mb / unit.length));
      expect(redactText(text).length).toBeGreaterThan(0);
    }
  });

  it("redacts every string of a JSON body, not its keys or numbers", () => {
    const body = { "a@b.io": 1, choices: [{ message: { content: "write to a@b.io" } }], n: 4111111111111111 };
    expect(redactValue(body)).toEqual({ "a@b.io": 1, choices: [{ message: { content: "write to [EMAIL]" } }], n: 4111111111111111 });
  });
});
