from dispatch_pay import create_app

app = create_app()
