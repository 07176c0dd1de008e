// The Lab page: the machine (GPUs), the inference servers found on it, the servers
// labgate supervises, the models loaded in them, and the providers' switches and
// circuit breakers. Every state-changing button asks first and says how it went
// (lab/actions.tsx).
import { GpuSection } from "./lab/GpuSection.tsx";
import { LabActionsProvider } from "./lab/actions.tsx";
import { ModelsSection } from "./lab/ModelsSection.tsx";
import { ProcessesSection } from "./lab/ProcessesSection.tsx";
import { ProvidersSection } from "./lab/ProvidersSection.tsx";
import { ServersSection } from "./lab/ServersSection.tsx";
import "./lab.css";

export function LabPage() {
  return (
    <LabActionsProvider>
      <div className="lab-page">
        <h1>Lab</h1>
        <GpuSection />
        <ServersSection />
        <ProcessesSection />
        <ModelsSection />
        <ProvidersSection />
      </div>
    </LabActionsProvider>
  );
}
