// The widget's strings, by language; English is the fallback for anything missing.

const en = {
  open: 'Open chat',
  close: 'Close chat',
  title: 'Chat with {name}',
  input: 'Type your message',
  send: 'Send',
  attach: 'Attach a file',
  record: 'Record a voice message',
  stop: 'Stop recording',
  remove: 'Remove {name}',
  human: 'Talk to a human',
  humanAsked: 'A person has been asked to join. They will reply here.',
  humanText: 'I would like to talk to a person.',
  joined: '{name} joined the conversation',
  typing: '{name} is typing…',
  someone: 'Someone',
  chat: 'Chat',
  help: 'Help',
  contact: 'Contact',
  search: 'Search articles',
  noArticles: 'No articles found.',
  back: 'Back',
  submit: 'Send',
  required: 'This field is required.',
  email: 'Enter a valid e-mail address.',
  phone: 'Enter a valid phone number.',
  thanks: 'Thank you! We will get back to you.',
  error: 'Something went wrong. Please try again.',
  retry: 'Retry',
  reconnecting: 'Reconnecting…',
  tooBig: '{name} is too large (max {max} MB).',
  badType: '{name}: this file type is not supported.',
  uploading: 'Uploading {name}…',
  voice: 'Voice message',
  sources: 'Sources',
  you: 'You',
  powered: 'Powered by ChatPad',
};
export type Strings = typeof en;

const tables: Record<string, Partial<Strings>> = {
  en,
  es: {
    open: 'Abrir chat', close: 'Cerrar chat', title: 'Chatea con {name}', input: 'Escribe tu mensaje',
    send: 'Enviar', attach: 'Adjuntar un archivo', record: 'Grabar un mensaje de voz', stop: 'Detener',
    human: 'Hablar con una persona', humanText: 'Me gustaría hablar con una persona.', chat: 'Chat',
    help: 'Ayuda', contact: 'Contacto', search: 'Buscar artículos', back: 'Volver', submit: 'Enviar',
    required: 'Este campo es obligatorio.', thanks: '¡Gracias! Te responderemos pronto.',
    error: 'Algo salió mal. Inténtalo de nuevo.', retry: 'Reintentar', reconnecting: 'Reconectando…',
    you: 'Tú', sources: 'Fuentes',
  },
  fr: {
    open: 'Ouvrir le chat', close: 'Fermer le chat', title: 'Discuter avec {name}', input: 'Votre message',
    send: 'Envoyer', attach: 'Joindre un fichier', record: 'Enregistrer un message vocal', stop: 'Arrêter',
    human: 'Parler à une personne', humanText: 'Je voudrais parler à une personne.', chat: 'Chat',
    help: 'Aide', contact: 'Contact', search: 'Rechercher des articles', back: 'Retour', submit: 'Envoyer',
    required: 'Ce champ est obligatoire.', thanks: 'Merci ! Nous vous répondrons bientôt.',
    error: 'Une erreur est survenue. Réessayez.', retry: 'Réessayer', reconnecting: 'Reconnexion…',
    you: 'Vous', sources: 'Sources',
  },
  de: {
    open: 'Chat öffnen', close: 'Chat schließen', title: 'Chat mit {name}', input: 'Nachricht eingeben',
    send: 'Senden', attach: 'Datei anhängen', record: 'Sprachnachricht aufnehmen', stop: 'Aufnahme beenden',
    human: 'Mit einem Menschen sprechen', humanText: 'Ich möchte mit einem Menschen sprechen.', chat: 'Chat',
    help: 'Hilfe', contact: 'Kontakt', search: 'Artikel suchen', back: 'Zurück', submit: 'Senden',
    required: 'Pflichtfeld.', thanks: 'Danke! Wir melden uns.', error: 'Etwas ist schiefgelaufen.',
    retry: 'Erneut versuchen', reconnecting: 'Verbinde neu…', you: 'Sie', sources: 'Quellen',
  },
  ar: {
    open: 'افتح المحادثة', close: 'أغلق المحادثة', title: 'تحدث مع {name}', input: 'اكتب رسالتك',
    send: 'إرسال', attach: 'إرفاق ملف', record: 'تسجيل رسالة صوتية', stop: 'إيقاف التسجيل',
    human: 'التحدث مع شخص', humanText: 'أود التحدث مع شخص.', chat: 'محادثة', help: 'مساعدة',
    contact: 'اتصل بنا', search: 'ابحث في المقالات', back: 'رجوع', submit: 'إرسال',
    required: 'هذا الحقل مطلوب.', thanks: 'شكرًا لك! سنعود إليك قريبًا.', error: 'حدث خطأ. حاول مرة أخرى.',
    retry: 'إعادة المحاولة', reconnecting: 'جارٍ إعادة الاتصال…', you: 'أنت', sources: 'المصادر',
  },
};

/** Languages written right to left. */
const RTL = ['ar', 'he', 'fa', 'ur'];

/** The strings for `lang` (e.g. `fr-CA` → French) and whether it is written right to left. */
export function strings(lang: string): { t: Strings; rtl: boolean } {
  const base = lang.split(/[-_]/)[0];
  return { t: { ...en, ...(tables[base] || {}) }, rtl: RTL.includes(base) };
}

/** `text` with `{key}` replaced from `vars`. */
export function fill(text: string, vars: Record<string, string | number>): string {
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}
