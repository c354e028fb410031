/**
 * A current value whose `BehaviorSubject` is made only when someone asks for the observable. A process
 * may run thousands of managers whose apps read two or three of their observables; the others should
 * cost a field, not a subject (RxJS also keeps an observer-list copy per subject once it has emitted).
 * Behaves as the subject would: subscribers get the current value, then every `next`; after `complete`
 * (before or after the subject was made) they get completion only, while `value` still follows `next`.
 */
import { BehaviorSubject, type Observable } from "rxjs";

export class LazyBehavior<T> {
  private subject?: BehaviorSubject<T>;
  private closed = false;

  constructor(private current: T) {}

  get value(): T {
    return this.current;
  }

  next(value: T): void {
    this.current = value;
    this.subject?.next(value);
  }

  asObservable(): Observable<T> {
    if (!this.subject) {
      this.subject = new BehaviorSubject(this.current);
      if (this.closed) this.subject.complete();
    }
    return this.subject.asObservable();
  }

  complete(): void {
    if (this.closed) return;
    this.closed = true;
    this.subject?.complete();
  }
}
