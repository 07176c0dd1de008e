// renderer/src/format.ts: every page formats numbers, money, durations and times with
// these, so the same amount reads the same on Overview, Requests, Costs, Lab, Routes
// and Batches.
import { describe, expect, it } from "vitest";
import {
  barWidth,
  breakerWord,
  formatBytes,
  formatCount,
  formatDuration,
  formatFraction,
  formatHourMinute,
  formatMiB,
  formatMs,
  formatPercent,
  formatRate,
  formatRelative,
  formatTime,
  formatTokens,
  formatUsd,
} from "../../renderer/src/format.ts";

describe("format", () => {
  it("dollars: $0 for nothing, cents from $1, three significant digits below", () => {
    expect(formatUsd(0)).toBe("$0");
    expect(formatUsd(1)).toBe("$1.00");
    expect(formatUsd(12.5)).toBe("$12.50");
    expect(formatUsd(1234.567)).toBe("$1,234.57");
    expect(formatUsd(0.5)).toBe("$0.50");
    expect(formatUsd(0.01)).toBe("$0.01");
    expect(formatUsd(0.123456)).toBe("$0.123");
    expect(formatUsd(0.0123456)).toBe("$0.0123");
    expect(formatUsd(0.000456)).toBe("$0.000456");
    expect(formatUsd(0.0000012345)).toBe("$0.00000123");
    expect(formatUsd(0.99995)).toBe("$1.00");
    expect(formatUsd(-0.25)).toBe("-$0.25");
    expect(formatUsd(null)).toBe("—");
    expect(formatUsd(Number.NaN)).toBe("—");
  });

  it("counts, tokens and rates", () => {
    expect(formatCount(1234567)).toBe("1,234,567");
    expect(formatCount(undefined)).toBe("—");
    expect(formatTokens(9999)).toBe("9,999");
    expect(formatTokens(12_400)).toBe("12.4k");
    expect(formatTokens(3_100_000)).toBe("3.1M");
    expect(formatRate(0)).toBe("0");
    expect(formatRate(0.42)).toBe("0.4");
    expect(formatRate(12.4)).toBe("12");
    expect(formatRate(1234)).toBe("1.2k");
  });

  it("milliseconds and durations", () => {
    expect(formatMs(0.84)).toBe("0.8 ms");
    expect(formatMs(42.4)).toBe("42 ms");
    expect(formatMs(1250)).toBe("1.25 s");
    expect(formatMs(12_500)).toBe("12.5 s");
    expect(formatMs(null)).toBe("—");
    expect(formatDuration(-5)).toBe("0 s");
    expect(formatDuration(12_900)).toBe("12 s");
    expect(formatDuration(245_000)).toBe("4 min 5 s");
    expect(formatDuration(7_140_000)).toBe("1 h 59 min");
    expect(formatDuration(7_200_000)).toBe("2 h 0 min");
    expect(formatDuration(51 * 3_600_000)).toBe("2 d 3 h");
  });

  it("how long ago or from now, with a few seconds of clock skew as now", () => {
    const now = Date.parse("2026-12-01T12:00:00Z");
    expect(formatRelative(now - 3000, now)).toBe("just now");
    expect(formatRelative(now + 3000, now)).toBe("just now");
    expect(formatRelative(now - 245_000, now)).toBe("4 min 5 s ago");
    expect(formatRelative("2026-12-01T14:00:00Z", now)).toBe("in 2 h 0 min");
    expect(formatRelative("not a time", now)).toBe("—");
    expect(formatRelative(null, now)).toBe("—");
  });

  it("times of day in the viewer's zone, with the date when not today", () => {
    const at = new Date(2026, 11, 1, 9, 5, 7).getTime();
    expect(formatTime(at, new Date(2026, 11, 1, 23, 0, 0).getTime())).toBe("09:05:07");
    expect(formatTime(new Date(at).toISOString(), new Date(2026, 11, 1, 23, 0, 0).getTime())).toBe("09:05:07");
    expect(formatTime(at, new Date(2026, 11, 2, 0, 0, 1).getTime())).toBe("Dec 1 09:05:07");
    expect(formatTime("garbage")).toBe("—");
    expect(formatHourMinute(at)).toBe("09:05");
    expect(formatHourMinute(new Date(2026, 11, 1, 21, 30).getTime())).toBe("21:30");
  });

  it("percentages and bar widths", () => {
    expect(formatFraction(0)).toBe("0 %");
    expect(formatFraction(0.004)).toBe("0.4 %");
    expect(formatFraction(0.123)).toBe("12 %");
    expect(formatFraction(1)).toBe("100 %");
    expect(formatPercent(1, 8)).toBe("13 %");
    expect(formatPercent(1, 0)).toBe("—");
    expect(barWidth(3, 8)).toBe("37.5%");
    expect(barWidth(9, 8)).toBe("100%");
    expect(barWidth(1, 0)).toBe("0%");
  });

  it("bytes in binary units and breaker states in words", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(9.8 * 1024 ** 3)).toBe("9.8 GiB");
    expect(formatMiB(12_288)).toBe("12.0 GiB");
    expect(breakerWord("half_open")).toBe("half-open");
    expect(breakerWord("open")).toBe("open");
  });
});
