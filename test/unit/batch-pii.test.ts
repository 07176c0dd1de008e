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

  it("redacts every string of a JSON body, not its keys or numbers", () => {
    const body = { "a@b.io": 1, choices: [{ message: { content: "write to a@b.io" } }], n: 4111111111111111 };
    expect(redactValue(body)).toEqual({ "a@b.io": 1, choices: [{ message: { content: "write to [EMAIL]" } }], n: 4111111111111111 });
  });
});
