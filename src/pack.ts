// One msgpackr encoder for payloads given as JS values (MCL payloads are plain maps).
import { Packr } from 'msgpackr';

export const packr = new Packr({ useRecords: false });
