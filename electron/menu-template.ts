// The tray model's plain menu items as Electron's menu template: the one step between
// tray-model.ts and Menu.buildFromTemplate. Type-only import, so tests run it without Electron.
import type { MenuItemConstructorOptions } from "electron";
import type { TrayAction, TrayMenuItem } from "./tray-model.ts";

export function toMenuTemplate(items: TrayMenuItem[], dispatch: (a: TrayAction) => void): MenuItemConstructorOptions[] {
  return items.map((item): MenuItemConstructorOptions => {
    if (item.type === "separator") return { id: item.id, type: "separator" };
    const base: MenuItemConstructorOptions = { id: item.id, label: item.label, enabled: item.enabled };
    if (item.type === "submenu") return { ...base, submenu: toMenuTemplate(item.submenu ?? [], dispatch) };
    const action = item.action;
    const click = action ? () => dispatch(action) : undefined;
    if (item.type === "checkbox") return { ...base, type: "checkbox", checked: item.checked === true, click };
    return { ...base, type: "normal", click };
  });
}
