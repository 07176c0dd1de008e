// Reads a text/event-stream body from fetch (EventSource cannot send the admin key
// as a header): calls onEvent(type, data) for each complete event; comments
// (heartbeats) are skipped. Resolves when the stream ends.
export async function readEventStream(body: ReadableStream<Uint8Array>, onEvent: (type: string, data: string) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const v = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") type = v;
        else if (field === "data") data.push(v);
      }
      if (data.length > 0) onEvent(type, data.join("\n"));
    }
  }
}
