// Shapes shared by the loader and the app, and the endpoints' answers the widget reads.

/** Endpoint URLs, injected into the loader by serve-widget. */
export interface Urls {
  config: string;
  chat: string;
  lead: string;
  upload: string;
  /** The realtime function URL; empty when the deployment has none. */
  realtime: string;
  /** The versioned app bundle, relative to serve-widget's URL. */
  app: string;
}

export interface LeadField {
  name: string;
  label: string;
  type: 'text' | 'email' | 'phone' | 'textarea' | 'select';
  required?: boolean;
  options?: string[];
}

/** get-widget-config's answer (the fields the widget uses). */
export interface Config {
  agentId: string;
  name: string;
  greeting: string;
  appearance: {
    primaryColor?: string;
    textColor?: string;
    backgroundColor?: string;
    position?: 'bottom-right' | 'bottom-left';
    launcherIcon?: 'chat' | 'message' | 'help' | 'sparkle';
    avatarUrl?: string;
    font?: string;
    darkMode?: 'light' | 'dark' | 'auto';
  };
  leadFormFields: LeadField[];
  helpCenter: boolean;
  features: { poweredBy: boolean; leadForm: boolean; humanHandoff: boolean };
}

/** What the widget remembers per agent (local storage). */
export interface Saved {
  visitorId: string;
  conversationId?: string;
}

/** What the loader hands the app. */
export interface Ctx {
  agentId: string;
  urls: Urls;
  lang: string;
  /** Hosted chat page: the panel fills the page, no launcher. */
  page: boolean;
  root: ShadowRoot;
  launcher: HTMLButtonElement;
  config: Promise<Config | null>;
  saved: Saved;
  save(): void;
}

export type Mount = (ctx: Ctx) => { open(): void; close(): void; toggle(): void };
