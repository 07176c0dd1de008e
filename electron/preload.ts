// The window's preload (sandboxed: bundled to one CommonJS file by electron/build.ts).
import { contextBridge, ipcRenderer } from "electron";
import { exposeDesktopApi } from "./preload-api.ts";

exposeDesktopApi(contextBridge, (channel) => ipcRenderer.invoke(channel));
